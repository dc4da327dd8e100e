#version 330 core
// Heatmap layer: a float value per grid cell (R32F), coloured through a 1-D colour map. Cell mode draws
// each cell as a flat square; smooth mode interpolates bilinearly between cell centres here in the
// shader (texelFetch: the value texture itself stays nearest, and glass (NaN) never bleeds in: NaN
// neighbours drop out of the weights, and a point whose own cell is NaN is not drawn in either mode).
// Opacity, threshold and mode are uniforms, so changing them never touches the data.
in vec2 v_uv;
uniform sampler2D u_values;
uniform sampler1D u_colormap;  // 256 texels, entry 0 = lowest value
uniform float u_min;
uniform float u_max;
uniform float u_threshold;     // values below are not drawn
uniform float u_opacity;
uniform int u_smooth;          // 0 cells, 1 bilinear
out vec4 fragColor;

bool valid(float v) { return !(isnan(v) || isinf(v)); }

void main() {
    ivec2 size = textureSize(u_values, 0);
    vec2 t = v_uv * vec2(size);
    ivec2 cell = clamp(ivec2(floor(t)), ivec2(0), size - 1);
    float v = texelFetch(u_values, cell, 0).r;
    if (!valid(v))
        discard;
    if (u_smooth != 0) {
        vec2 p = t - 0.5;
        ivec2 i0 = ivec2(floor(p));
        vec2 f = p - vec2(i0);
        float sum = 0.0;
        float wsum = 0.0;
        for (int dy = 0; dy <= 1; ++dy)
            for (int dx = 0; dx <= 1; ++dx) {
                float q = texelFetch(u_values, clamp(i0 + ivec2(dx, dy), ivec2(0), size - 1), 0).r;
                float w = (dx == 1 ? f.x : 1.0 - f.x) * (dy == 1 ? f.y : 1.0 - f.y);
                if (valid(q)) {
                    sum += w * q;
                    wsum += w;
                }
            }
        if (wsum > 0.0)
            v = sum / wsum;
    }
    if (v < u_threshold)
        discard;
    float s = clamp((v - u_min) / max(u_max - u_min, 1e-12), 0.0, 1.0);
    // Sample texel centres exactly: index round(s * 255).
    vec3 c = texture(u_colormap, (floor(s * 255.0 + 0.5) + 0.5) / 256.0).rgb;
    fragColor = vec4(c, u_opacity);
}
