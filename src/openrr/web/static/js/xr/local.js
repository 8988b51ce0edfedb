// Local content drawn over the remote picture in the headset's own space: each controller's ray and a
// cursor where it meets the scene. Drawn after the remote mesh with the depth test on, so the model hides
// the part of a ray behind it, and a ray in front of the model hides the model.

import { program } from "./reprojection.js";

const VERTEX = `#version 300 es
in vec3 a_position;
uniform mat4 u_viewProj;
void main() { gl_Position = u_viewProj * vec4(a_position, 1.0); }`;

const FRAGMENT = `#version 300 es
precision mediump float;
uniform vec4 u_colour;
out vec4 colour;
void main() { colour = u_colour; }`;

const RAY_WIDTH_M = 0.005; // half the ribbon's width
const CURSOR_M = 0.015;

export class LocalContent {
  constructor(gl) {
    this.gl = gl;
    this.shader = program(gl, VERTEX, FRAGMENT);
    this.vao = gl.createVertexArray();
    this.buffer = gl.createBuffer();
    gl.bindVertexArray(this.vao);
    gl.bindBuffer(gl.ARRAY_BUFFER, this.buffer);
    const at = gl.getAttribLocation(this.shader.program, "a_position");
    gl.enableVertexAttribArray(at);
    gl.vertexAttribPointer(at, 3, gl.FLOAT, false, 0, 0);
    gl.bindVertexArray(null);
  }

  /**
   * Draw `rays` ([{origin, direction, length, colour}] in the headset's space) and `cursors` ([{position,
   * colour}]) through `viewProj` (headset space -> clip space of the current eye), whose eye sits at `eye`.
   */
  draw(viewProj, eye, rays, cursors) {
    const triangles = [];
    const colours = [];
    for (const ray of rays) {
      const end = ray.origin.map((v, i) => v + ray.direction[i] * ray.length);
      // A thin ribbon facing the eye, two triangles.
      const toEye = eye.map((v, i) => v - ray.origin[i]);
      let side = cross(ray.direction, toEye);
      const n = Math.hypot(...side) || 1;
      side = side.map((v) => (v / n) * RAY_WIDTH_M);
      const a = ray.origin.map((v, i) => v - side[i]);
      const b = ray.origin.map((v, i) => v + side[i]);
      const c = end.map((v, i) => v + side[i]);
      const d = end.map((v, i) => v - side[i]);
      triangles.push([a, b, c, a, c, d]);
      colours.push(ray.colour);
    }
    for (const cursor of cursors) {
      const p = cursor.position;
      const s = CURSOR_M;
      const cube = [];
      for (const [u, v, w] of [[0, 1, 2], [1, 2, 0], [2, 0, 1]]) {
        for (const sign of [-1, 1]) {
          const corner = (du, dv) => {
            const q = [...p];
            q[u] += sign * s;
            q[v] += du * s;
            q[w] += dv * s;
            return q;
          };
          cube.push(corner(-1, -1), corner(1, -1), corner(1, 1), corner(-1, -1), corner(1, 1), corner(-1, 1));
        }
      }
      triangles.push(cube);
      colours.push(cursor.colour);
    }
    if (!triangles.length) return;
    const gl = this.gl;
    const { uniforms: u } = this.shader;
    gl.useProgram(this.shader.program);
    gl.uniformMatrix4fv(u.u_viewProj, false, viewProj);
    gl.enable(gl.DEPTH_TEST);
    gl.disable(gl.CULL_FACE);
    gl.bindVertexArray(this.vao);
    gl.bindBuffer(gl.ARRAY_BUFFER, this.buffer);
    triangles.forEach((points, i) => {
      gl.bufferData(gl.ARRAY_BUFFER, new Float32Array(points.flat()), gl.STREAM_DRAW);
      gl.uniform4fv(u.u_colour, colours[i]);
      gl.drawArrays(gl.TRIANGLES, 0, points.length);
    });
    gl.bindVertexArray(null);
  }
}

function cross(a, b) {
  return [a[1] * b[2] - a[2] * b[1], a[2] * b[0] - a[0] * b[2], a[0] * b[1] - a[1] * b[0]];
}
