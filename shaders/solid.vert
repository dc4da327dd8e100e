#version 330 core
// Flat geometry given in widget pixels (origin top-left), for annotation outlines and fills.
layout(location = 0) in vec2 a_pos;
uniform vec2 u_size;
void main() {
    gl_Position = vec4(a_pos.x / u_size.x * 2.0 - 1.0, 1.0 - a_pos.y / u_size.y * 2.0, 0.0, 1.0);
}
