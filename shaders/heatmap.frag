#version 330 core
// Heatmap layer: a float value per grid cell (R32F, nearest), coloured through a 1-D colour map.
// Opacity and threshold are uniforms, so changing them never touches the data.
in vec2 v_uv;
uniform sampler2D u_values;
uniform sampler1D u_colormap;  // 256 texels, entry 0 = lowest value
uniform float u_min;
uniform float u_max;
uniform float u_threshold;     // values below are not drawn
uniform float u_opacity;
out vec4 fragColor;
void main() {
    float v = texture(u_values, v_uv).r;
    if (isnan(v) || isinf(v) || v < u_threshold)
        discard;
    float t = clamp((v - u_min) / max(u_max - u_min, 1e-12), 0.0, 1.0);
    // Sample texel centres exactly: index round(t * 255).
    vec3 c = texture(u_colormap, (floor(t * 255.0 + 0.5) + 0.5) / 256.0).rgb;
    fragColor = vec4(c, u_opacity);
}
