// Frame renderers of the browser viewer (prepended to viewer.js). Both take a frame's table indices (grayscale)
// or RGB bytes (colour) once, then a display table (uint8 grey value per index, VOI and inversion applied) per
// window change, and draw the frame with a transform: canvas pixel = image pixel * s + (ox, oy).
// WebGL2 keeps the indices in an R16UI/R8UI texture and looks the table up per screen pixel (bilinear on the
// display values when the image is shown smaller than 1:1, nearest when enlarged); the canvas-2D fallback maps
// on the CPU: a grayscale frame shown smaller than 1:1 at its size on screen (the indices of the level of a 2 x 2
// mean pyramid that still has one per screen pixel, resampled bilinearly once per frame and scale), put straight
// into the canvas; enlarged or colour frames as that level's canvas scaled by drawImage; greys() always reads the
// full-resolution frame.

// The name of the rasteriser behind a WebGL context, when the browser tells it.
function glRendererName(gl) {
  const info = gl.getExtension("WEBGL_debug_renderer_info");
  return String(gl.getParameter(info ? info.UNMASKED_RENDERER_WEBGL : gl.RENDERER));
}

// A software rasteriser (no GPU) draws this shader several times slower than canvas 2D maps the pixels
// (bench/viewer.py: about 160 ms against 36 ms per window step on the 1955 x 1841 CR), so it is not used unless
// window.studyViewerForceWebGL is set (the browser tests check the WebGL pixels that way).
const SOFTWARE_GL = /swiftshader|llvmpipe|softpipe|software/i;

function createGLRenderer(canvas) {
  const gl = canvas.getContext("webgl2", { antialias: false, depth: false, premultipliedAlpha: false });
  if (!gl) return null;
  const name = glRendererName(gl);
  if (SOFTWARE_GL.test(name) && !window.studyViewerForceWebGL) throw new Error(`only a software rasteriser (${name})`);
  const vertex = `#version 300 es
    in vec2 corner; void main() { gl_Position = vec4(corner, 0.0, 1.0); }`;
  const fragment = `#version 300 es
    precision highp float; precision highp int; precision highp usampler2D;
    uniform usampler2D values; uniform sampler2D lut; uniform sampler2D rgb;
    uniform int colour; uniform int invertColour; uniform int smoothing;
    uniform vec2 size; uniform vec3 place; uniform float canvasHeight; uniform int flip;
    out vec4 colourOut;
    float grey(ivec2 p) {
      uint i = texelFetch(values, p, 0).r;
      return texelFetch(lut, ivec2(int(i & 255u), int(i >> 8u)), 0).r;
    }
    vec3 pixel(ivec2 p) {
      if (colour == 1) { vec3 c = texelFetch(rgb, p, 0).rgb; return invertColour == 1 ? 1.0 - c : c; }
      return vec3(grey(p));
    }
    void main() {
      float y = flip == 1 ? canvasHeight - gl_FragCoord.y : gl_FragCoord.y;
      vec2 at = (vec2(gl_FragCoord.x, y) - place.yz) / place.x;  // image coordinates, pixel centres at +0.5
      if (at.x < 0.0 || at.y < 0.0 || at.x >= size.x || at.y >= size.y) { colourOut = vec4(0.0, 0.0, 0.0, 1.0); return; }
      if (smoothing == 0) { colourOut = vec4(pixel(ivec2(at)), 1.0); return; }
      vec2 q = clamp(at - 0.5, vec2(0.0), size - 1.0);
      ivec2 a = ivec2(q); ivec2 b = min(a + 1, ivec2(size) - 1); vec2 f = q - vec2(a);
      vec3 top = mix(pixel(a), pixel(ivec2(b.x, a.y)), f.x);
      vec3 bottom = mix(pixel(ivec2(a.x, b.y)), pixel(b), f.x);
      colourOut = vec4(mix(top, bottom, f.y), 1.0);
    }`;
  const compile = (type, source) => {
    const shader = gl.createShader(type);
    gl.shaderSource(shader, source);
    gl.compileShader(shader);
    if (!gl.getShaderParameter(shader, gl.COMPILE_STATUS)) throw new Error(gl.getShaderInfoLog(shader));
    return shader;
  };
  const program = gl.createProgram();
  gl.attachShader(program, compile(gl.VERTEX_SHADER, vertex));
  gl.attachShader(program, compile(gl.FRAGMENT_SHADER, fragment));
  gl.linkProgram(program);
  if (!gl.getProgramParameter(program, gl.LINK_STATUS)) throw new Error(gl.getProgramInfoLog(program));
  gl.useProgram(program);
  const buffer = gl.createBuffer();
  gl.bindBuffer(gl.ARRAY_BUFFER, buffer);
  gl.bufferData(gl.ARRAY_BUFFER, new Float32Array([-1, -1, 1, -1, -1, 1, 1, 1]), gl.STATIC_DRAW);
  const corner = gl.getAttribLocation(program, "corner");
  gl.enableVertexAttribArray(corner);
  gl.vertexAttribPointer(corner, 2, gl.FLOAT, false, 0, 0);
  const uniform = (name) => gl.getUniformLocation(program, name);
  const textures = {};
  ["values", "lut", "rgb"].forEach((name, unit) => {
    textures[name] = gl.createTexture();
    gl.activeTexture(gl.TEXTURE0 + unit);
    gl.bindTexture(gl.TEXTURE_2D, textures[name]);
    gl.texParameteri(gl.TEXTURE_2D, gl.TEXTURE_MIN_FILTER, gl.NEAREST);
    gl.texParameteri(gl.TEXTURE_2D, gl.TEXTURE_MAG_FILTER, gl.NEAREST);
    gl.texParameteri(gl.TEXTURE_2D, gl.TEXTURE_WRAP_S, gl.CLAMP_TO_EDGE);
    gl.texParameteri(gl.TEXTURE_2D, gl.TEXTURE_WRAP_T, gl.CLAMP_TO_EDGE);
    gl.uniform1i(uniform(name), unit);
  });
  gl.pixelStorei(gl.UNPACK_ALIGNMENT, 1);
  gl.pixelStorei(gl.PACK_ALIGNMENT, 1);
  const maxSide = gl.getParameter(gl.MAX_TEXTURE_SIZE);
  let frame = null;
  let lost = false;
  canvas.addEventListener("webglcontextlost", () => { lost = true; });

  function render(width, height, s, ox, oy, flip, invertColour) {
    gl.viewport(0, 0, width, height);
    gl.uniform2f(uniform("size"), frame.columns, frame.rows);
    gl.uniform3f(uniform("place"), s, ox, oy);
    gl.uniform1f(uniform("canvasHeight"), height);
    gl.uniform1i(uniform("flip"), flip ? 1 : 0);
    gl.uniform1i(uniform("smoothing"), s < 1 ? 1 : 0);
    gl.uniform1i(uniform("colour"), frame.kind === "colour" ? 1 : 0);
    gl.uniform1i(uniform("invertColour"), invertColour ? 1 : 0);
    gl.drawArrays(gl.TRIANGLE_STRIP, 0, 4);
  }

  return {
    kind: "WebGL2",
    get lost() { return lost; },
    setFrame(next) {
      if (next.columns > maxSide || next.rows > maxSide) {
        throw new Error(`the frame (${next.columns} x ${next.rows}) is larger than this GPU's textures (${maxSide})`);
      }
      frame = next;
      if (frame.kind === "colour") {
        gl.activeTexture(gl.TEXTURE2);
        gl.texImage2D(gl.TEXTURE_2D, 0, gl.RGB8, frame.columns, frame.rows, 0, gl.RGB, gl.UNSIGNED_BYTE, frame.rgb);
        return;
      }
      gl.activeTexture(gl.TEXTURE0);
      const wide = frame.values instanceof Uint16Array;
      gl.texImage2D(gl.TEXTURE_2D, 0, wide ? gl.R16UI : gl.R8UI, frame.columns, frame.rows, 0, gl.RED_INTEGER,
        wide ? gl.UNSIGNED_SHORT : gl.UNSIGNED_BYTE, frame.values);
    },
    setLut(table) { // uint8 per index, laid out 256 wide
      const rows = Math.ceil(table.length / 256);
      const padded = new Uint8Array(rows * 256);
      padded.set(table);
      gl.activeTexture(gl.TEXTURE1);
      gl.texImage2D(gl.TEXTURE_2D, 0, gl.R8, 256, rows, 0, gl.RED, gl.UNSIGNED_BYTE, padded);
    },
    draw(s, ox, oy, invertColour) {
      gl.bindFramebuffer(gl.FRAMEBUFFER, null);
      if (!frame) { gl.clearColor(0, 0, 0, 1); gl.clear(gl.COLOR_BUFFER_BIT); return; }
      render(canvas.width, canvas.height, s, ox, oy, true, invertColour);
    },
    clear() { frame = null; this.draw(); },
    greys(step, invertColour) { // the frame at 1:1 in a framebuffer, read back
      const { columns: width, rows: height } = frame;
      const target = gl.createTexture();
      gl.activeTexture(gl.TEXTURE3);
      gl.bindTexture(gl.TEXTURE_2D, target);
      gl.texImage2D(gl.TEXTURE_2D, 0, gl.RGBA8, width, height, 0, gl.RGBA, gl.UNSIGNED_BYTE, null);
      const fbo = gl.createFramebuffer();
      gl.bindFramebuffer(gl.FRAMEBUFFER, fbo);
      gl.framebufferTexture2D(gl.FRAMEBUFFER, gl.COLOR_ATTACHMENT0, gl.TEXTURE_2D, target, 0);
      render(width, height, 1, 0, 0, false, invertColour);
      const data = new Uint8Array(width * height * 4);
      gl.readPixels(0, 0, width, height, gl.RGBA, gl.UNSIGNED_BYTE, data);
      gl.bindFramebuffer(gl.FRAMEBUFFER, null);
      gl.deleteFramebuffer(fbo);
      gl.deleteTexture(target);
      return { width, height, data };
    },
  };
}

// Indices at half the size (mean of each 2 x 2 block, rounded), as viewers resample stored values before the
// VOI (studyapp.dicom.display.downsample does the same on the server).
function halve(values, width, height) {
  const w = Math.ceil(width / 2), h = Math.ceil(height / 2);
  const out = new values.constructor(w * h);
  for (let y = 0; y < h; y++) {
    const y0 = 2 * y, y1 = Math.min(2 * y + 1, height - 1);
    for (let x = 0; x < w; x++) {
      const x0 = 2 * x, x1 = Math.min(2 * x + 1, width - 1);
      out[y * w + x] = (values[y0 * width + x0] + values[y0 * width + x1] + values[y1 * width + x0]
        + values[y1 * width + x1] + 2) >> 2;
    }
  }
  return { values: out, width: w, height: h };
}

// The indices of a pyramid level resampled (bilinear, before the VOI like the pyramid's means) to width x height,
// the size of the image on screen, which is at most the level's size and more than half of it.
function resample(item, width, height) {
  const fx = item.width / width, fy = item.height / height;
  const x0 = new Int32Array(width), x1 = new Int32Array(width), wx = new Float32Array(width);
  for (let x = 0; x < width; x++) {
    const at = Math.min(Math.max((x + 0.5) * fx - 0.5, 0), item.width - 1);
    x0[x] = Math.floor(at); x1[x] = Math.min(x0[x] + 1, item.width - 1); wx[x] = at - x0[x];
  }
  const values = item.values;
  const out = new values.constructor(width * height);
  for (let y = 0; y < height; y++) {
    const at = Math.min(Math.max((y + 0.5) * fy - 0.5, 0), item.height - 1);
    const y0 = Math.floor(at), wy = at - y0;
    const top = y0 * item.width, bottom = Math.min(y0 + 1, item.height - 1) * item.width;
    for (let x = 0, p = y * width; x < width; x++, p++) {
      const a = values[top + x0[x]], b = values[top + x1[x]], c = values[bottom + x0[x]], d = values[bottom + x1[x]];
      const upper = a + (b - a) * wx[x], lower = c + (d - c) * wx[x];
      out[p] = Math.round(upper + (lower - upper) * wy);
    }
  }
  return out;
}

function create2DRenderer(canvas) {
  const context = canvas.getContext("2d");
  if (!context) return null;
  let frame = null;
  let levels = []; // level k: indices at 1 / 2^k of the size, with its canvas once painted
  let table = null;
  let screen = null; // a grayscale frame shown smaller than 1:1: its indices at the size on screen, and their pixels
  const level = (k) => {
    while (levels.length <= k) {
      const last = levels[levels.length - 1];
      levels.push(halve(last.values, last.width, last.height));
    }
    return levels[k];
  };
  const paint = (item, invertColour) => { // indices (or RGB) -> the level's canvas
    if (!item.canvas) {
      item.canvas = document.createElement("canvas");
      item.canvas.width = item.width;
      item.canvas.height = item.height;
      item.context = item.canvas.getContext("2d", { willReadFrequently: true });
      item.data = item.context.createImageData(item.width, item.height);
      item.rgba = new Uint32Array(item.data.data.buffer);
    }
    const rgba = item.rgba;
    if (frame.kind === "colour") {
      const rgb = frame.rgb;
      for (let p = 0, q = 0; p < rgba.length; p++, q += 3) {
        const r = rgb[q], g = rgb[q + 1], b = rgb[q + 2];
        rgba[p] = invertColour ? 0xff000000 | ((255 - b) << 16) | ((255 - g) << 8) | (255 - r)
          : 0xff000000 | (b << 16) | (g << 8) | r;
      }
    } else {
      const values = item.values;
      for (let p = 0; p < values.length; p++) rgba[p] = table[values[p]];
    }
    item.context.putImageData(item.data, 0, 0);
    item.painted = frame.kind === "colour" ? invertColour : table;
  };
  // Shown smaller than 1:1, a grayscale frame is painted at the size it has on screen, straight into the canvas:
  // a window step then maps only the pixels on screen through the table, with no scaled copy to draw.
  const drawOnScreen = (s, ox, oy) => {
    const width = Math.max(1, Math.round(frame.columns * s)), height = Math.max(1, Math.round(frame.rows * s));
    if (!screen || screen.width !== width || screen.height !== height) {
      const item = level(Math.min(6, Math.floor(Math.log2(1 / s))));
      const data = context.createImageData(width, height);
      screen = { width, height, values: resample(item, width, height), data, rgba: new Uint32Array(data.data.buffer),
        painted: null };
    }
    if (screen.painted !== table) {
      const { values, rgba } = screen;
      for (let p = 0; p < values.length; p++) rgba[p] = table[values[p]];
      screen.painted = table;
    }
    const x = Math.round(ox), y = Math.round(oy);
    context.fillRect(0, 0, canvas.width, Math.max(0, y)); // black around the image only
    context.fillRect(0, y + height, canvas.width, Math.max(0, canvas.height - y - height));
    context.fillRect(0, y, Math.max(0, x), height);
    context.fillRect(x + width, y, Math.max(0, canvas.width - x - width), height);
    context.putImageData(screen.data, x, y);
  };
  return {
    kind: "canvas 2D",
    lost: false,
    setFrame(next) {
      frame = next;
      levels = [{ values: frame.values, width: frame.columns, height: frame.rows }];
      screen = null;
    },
    setLut(grey) {
      table = new Uint32Array(grey.length);
      for (let i = 0; i < grey.length; i++) table[i] = 0xff000000 | (grey[i] * 0x010101);
    },
    draw(s, ox, oy, invertColour) {
      context.setTransform(1, 0, 0, 1, 0, 0);
      context.fillStyle = "#000";
      if (frame && frame.kind === "grayscale" && s < 1) { drawOnScreen(s, ox, oy); return; }
      context.fillRect(0, 0, canvas.width, canvas.height);
      if (!frame) return;
      // the smallest level that still has a pixel for every screen pixel
      const k = frame.kind === "colour" || s >= 0.5 ? 0 : Math.min(6, Math.floor(Math.log2(1 / s)));
      const item = level(k);
      if (item.painted !== (frame.kind === "colour" ? invertColour : table)) paint(item, invertColour);
      const scale = s * (frame.columns / item.width);
      context.imageSmoothingEnabled = scale < 1;
      context.setTransform(scale, 0, 0, s * (frame.rows / item.height), ox, oy);
      context.drawImage(item.canvas, 0, 0);
      context.setTransform(1, 0, 0, 1, 0, 0);
    },
    clear() { frame = null; this.draw(); },
    greys(step, invertColour) { // full resolution, whatever level is on screen
      const item = level(0);
      if (item.painted !== (frame.kind === "colour" ? invertColour : table)) paint(item, invertColour);
      return { width: item.width, height: item.height,
        data: item.context.getImageData(0, 0, item.width, item.height).data };
    },
  };
}
