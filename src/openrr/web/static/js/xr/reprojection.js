// Late-stage reprojection in WebGL2: each eye's streamed picture drawn as a mesh whose vertices are the
// picture's pixels put back where they were in the scene (from the streamed depth and the eye it was
// rendered from), then seen from where the eye is now. Head motion during the round trip then moves the
// picture as it moves the world: rotation exactly, position as far as a grid of depth samples can (the
// edges of objects stretch a little). Without depth, every pixel is taken to lie FALLBACK_M metres away
// (rotation only, in effect). The mesh writes real depth, so local content drawn afterwards (controller
// rays, a cursor) is hidden by the remote model where it is behind it, and hides it where it is in front.

const GRID = 96; // vertices per side of an eye's mesh
const FALLBACK_M = 3.0;

const VERTEX = `#version 300 es
precision highp float;
in vec2 a_uv;                   // 0..1 across the eye's picture, y from the top
uniform sampler2D u_video;
uniform vec4 u_color;           // the eye's drawn colour rectangle in texture coordinates (x, y, w, h)
uniform vec4 u_depth;           // ... and its depth rectangle (w = 0: no depth)
uniform vec2 u_size;            // the video's size in pixels
uniform vec4 u_tangents;        // left, right, bottom, top of the eye it was rendered from
uniform vec2 u_clip;            // near, far
uniform vec3 u_levels;          // near level, far level, empty below (of 255)
uniform float u_fallback;       // distance without depth (scene units)
uniform mat4 u_renderEye;       // the rendered eye -> scene
uniform mat4 u_viewProj;        // scene -> the current eye's clip space
out vec2 v_color;
out vec2 v_depth;
out float v_empty;

float distanceAt(vec2 uv) {
  if (u_depth.z <= 0.0) return u_fallback;
  ivec2 texel = ivec2((u_depth.xy + uv * u_depth.zw) * u_size);
  float level = texelFetch(u_video, texel, 0).g * 255.0;
  if (level < u_levels.z) return -1.0;
  float t = clamp((level - u_levels.y) / (u_levels.x - u_levels.y), 0.0, 1.0);
  return 1.0 / (1.0 / u_clip.y + t * (1.0 / u_clip.x - 1.0 / u_clip.y));
}

void main() {
  float d = distanceAt(a_uv);
  v_empty = d < 0.0 ? 1.0 : 0.0;
  if (d < 0.0) d = u_clip.y * 4.0;  // nothing there: far away, so only the rotation moves it
  vec2 tangent = vec2(mix(u_tangents.x, u_tangents.y, a_uv.x), mix(u_tangents.w, u_tangents.z, a_uv.y));
  vec4 world = u_renderEye * vec4(tangent * d, -d, 1.0);
  gl_Position = u_viewProj * world;
  v_color = u_color.xy + a_uv * u_color.zw;
  v_depth = u_depth.xy + a_uv * u_depth.zw;
}`;

const FRAGMENT = `#version 300 es
precision mediump float;
uniform sampler2D u_video;
uniform int u_transparent;      // AR: no surface, no pixel
uniform float u_emptyBelow;
in vec2 v_color;
in vec2 v_depth;
in float v_empty;
out vec4 colour;

void main() {
  if (u_transparent == 1) {
    if (v_depth.x >= 0.0 && u_emptyBelow > 0.0) {
      if (texture(u_video, v_depth).g * 255.0 < u_emptyBelow) discard;
    } else if (v_empty > 0.5) {
      discard;
    }
  }
  vec3 rgb = texture(u_video, v_color).rgb;
  if (u_transparent == 1 && u_emptyBelow <= 0.0 && max(rgb.r, max(rgb.g, rgb.b)) < 8.0 / 255.0) discard;
  colour = vec4(rgb, 1.0);
}`;

function compile(gl, type, source) {
  const shader = gl.createShader(type);
  gl.shaderSource(shader, source);
  gl.compileShader(shader);
  if (!gl.getShaderParameter(shader, gl.COMPILE_STATUS)) throw new Error(gl.getShaderInfoLog(shader) || "shader");
  return shader;
}

export function program(gl, vertex, fragment) {
  const p = gl.createProgram();
  gl.attachShader(p, compile(gl, gl.VERTEX_SHADER, vertex));
  gl.attachShader(p, compile(gl, gl.FRAGMENT_SHADER, fragment));
  gl.linkProgram(p);
  if (!gl.getProgramParameter(p, gl.LINK_STATUS)) throw new Error(gl.getProgramInfoLog(p) || "link");
  const uniforms = {};
  for (let i = 0; i < gl.getProgramParameter(p, gl.ACTIVE_UNIFORMS); i++) {
    const name = gl.getActiveUniform(p, i).name;
    uniforms[name] = gl.getUniformLocation(p, name);
  }
  return { program: p, uniforms };
}

export class Reprojection {
  constructor(gl) {
    this.gl = gl;
    this.shader = program(gl, VERTEX, FRAGMENT);
    const uvs = [];
    for (let y = 0; y < GRID; y++) for (let x = 0; x < GRID; x++) uvs.push(x / (GRID - 1), y / (GRID - 1));
    const indices = [];
    for (let y = 0; y < GRID - 1; y++) {
      for (let x = 0; x < GRID - 1; x++) {
        const i = y * GRID + x;
        indices.push(i, i + GRID, i + 1, i + 1, i + GRID, i + GRID + 1);
      }
    }
    this.count = indices.length;
    this.vao = gl.createVertexArray();
    gl.bindVertexArray(this.vao);
    const buffer = gl.createBuffer();
    gl.bindBuffer(gl.ARRAY_BUFFER, buffer);
    gl.bufferData(gl.ARRAY_BUFFER, new Float32Array(uvs), gl.STATIC_DRAW);
    const at = gl.getAttribLocation(this.shader.program, "a_uv");
    gl.enableVertexAttribArray(at);
    gl.vertexAttribPointer(at, 2, gl.FLOAT, false, 0, 0);
    const index = gl.createBuffer();
    gl.bindBuffer(gl.ELEMENT_ARRAY_BUFFER, index);
    gl.bufferData(gl.ELEMENT_ARRAY_BUFFER, new Uint32Array(indices), gl.STATIC_DRAW);
    gl.bindVertexArray(null);
    this.texture = gl.createTexture();
    gl.bindTexture(gl.TEXTURE_2D, this.texture);
    gl.texParameteri(gl.TEXTURE_2D, gl.TEXTURE_MIN_FILTER, gl.LINEAR);
    gl.texParameteri(gl.TEXTURE_2D, gl.TEXTURE_MAG_FILTER, gl.LINEAR);
    gl.texParameteri(gl.TEXTURE_2D, gl.TEXTURE_WRAP_S, gl.CLAMP_TO_EDGE);
    gl.texParameteri(gl.TEXTURE_2D, gl.TEXTURE_WRAP_T, gl.CLAMP_TO_EDGE);
    this.size = [0, 0];
  }

  /** Take the video's current picture (call once per new video frame). */
  upload(video) {
    const gl = this.gl;
    gl.bindTexture(gl.TEXTURE_2D, this.texture);
    gl.pixelStorei(gl.UNPACK_FLIP_Y_WEBGL, false);
    gl.texImage2D(gl.TEXTURE_2D, 0, gl.RGBA, gl.RGBA, gl.UNSIGNED_BYTE, video);
    this.size = [video.videoWidth, video.videoHeight];
  }

  /**
   * Draw eye `index` of the stereo frame described by `layout` (xr.started) and `xr` (its frame message's
   * xr) into the bound viewport, seen through `viewProj` (scene -> the current eye's clip space).
   */
  draw(index, layout, xr, viewProj, { transparent = false, renderEye, unitsPerMetre = 1 }) {
    const gl = this.gl;
    const [w, h] = this.size;
    if (w !== layout.frame.width || h !== layout.frame.height) return; // a 2D picture still on its way out
    const { uniforms: u } = this.shader;
    const eye = layout.eyes[index];
    const rect = (r) => [r[0] / w, r[1] / h, xr.size[0] / w, xr.size[1] / h]; // the drawn part of r
    gl.useProgram(this.shader.program);
    gl.activeTexture(gl.TEXTURE0);
    gl.bindTexture(gl.TEXTURE_2D, this.texture);
    gl.uniform1i(u.u_video, 0);
    gl.uniform4fv(u.u_color, rect(eye.color));
    gl.uniform4fv(u.u_depth, eye.depth ? rect(eye.depth) : [-1, -1, 0, 0]);
    gl.uniform2f(u.u_size, w, h);
    const p = xr.views[index].projection;
    gl.uniform4f(u.u_tangents, (p[8] - 1) / p[0], (p[8] + 1) / p[0], (p[9] - 1) / p[5], (p[9] + 1) / p[5]);
    gl.uniform2f(u.u_clip, xr.near, xr.far);
    const levels = layout.depth || { nearLevel: 255, farLevel: 32, emptyBelow: 0 };
    gl.uniform3f(u.u_levels, levels.nearLevel, levels.farLevel, levels.emptyBelow);
    gl.uniform1f(u.u_emptyBelow, layout.depth ? levels.emptyBelow : 0);
    gl.uniform1f(u.u_fallback, FALLBACK_M * unitsPerMetre);
    gl.uniformMatrix4fv(u.u_renderEye, false, renderEye);
    gl.uniformMatrix4fv(u.u_viewProj, false, viewProj);
    gl.uniform1i(u.u_transparent, transparent ? 1 : 0);
    gl.enable(gl.DEPTH_TEST);
    gl.disable(gl.CULL_FACE);
    gl.bindVertexArray(this.vao);
    gl.drawElements(gl.TRIANGLES, this.count, gl.UNSIGNED_INT, 0);
    gl.bindVertexArray(null);
  }
}
