#version 330 core
// A textured quad: slide tiles (RGB, opaque, u_opacity = 1) and the latent view (RGBA at grid
// resolution; alpha 0 marks background cells), blended with u_opacity.
in vec2 v_uv;
uniform sampler2D u_tex;
uniform float u_opacity;
out vec4 fragColor;
void main() {
    vec4 texel = texture(u_tex, v_uv);
    fragColor = vec4(texel.rgb, texel.a * u_opacity);
}
