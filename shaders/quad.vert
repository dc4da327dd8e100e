#version 330 core
// A unit quad (a_unit in [0,1]²) stretched over u_rect = (left, top, right, bottom) in NDC;
// texture coordinates interpolate u_uv = (u0, v0, u1, v1), v0 at the top edge.
layout(location = 0) in vec2 a_unit;
uniform vec4 u_rect;
uniform vec4 u_uv;
out vec2 v_uv;
void main() {
    v_uv = mix(u_uv.xy, u_uv.zw, a_unit);
    gl_Position = vec4(mix(u_rect.x, u_rect.z, a_unit.x), mix(u_rect.y, u_rect.w, a_unit.y), 0.0, 1.0);
}
