// Frame renderers of the browser viewer (prepended to viewer.js). Both take a frame's table indices (grayscale)
// or RGB bytes (colour) once, then a display table (uint8 grey value per index, VOI and inversion applied) per
// window change, and draw the frame with a transform: canvas pixel = image pixel * s + (ox, oy).
// WebGL2 keeps the indices in an R16UI/R8UI texture and looks the table up per screen pixel (bilinear on the
// display values when the image is shown smaller than 1:1, nearest when enlarged); the canvas-2D fallback maps
// every image pixel on the CPU and lets drawImage scale.

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

function create2DRenderer(canvas) {
  const context = canvas.getContext("2d");
  const image = document.createElement("canvas"); // the frame at full resolution
  const imageContext = image.getContext("2d", { willReadFrequently: true });
  if (!context || !imageContext) return null;
  let frame = null;
  let imageData = null;
  let rgba = null;
  const paintColour = (invertColour) => {
    const rgb = frame.rgb;
    for (let p = 0, q = 0; p < rgba.length; p++, q += 3) {
      const r = rgb[q], g = rgb[q + 1], b = rgb[q + 2];
      rgba[p] = invertColour ? 0xff000000 | ((255 - b) << 16) | ((255 - g) << 8) | (255 - r)
        : 0xff000000 | (b << 16) | (g << 8) | r;
    }
    imageContext.putImageData(imageData, 0, 0);
  };
  let colourInverted = null;
  return {
    kind: "canvas 2D",
    lost: false,
    setFrame(next) {
      frame = next;
      image.width = frame.columns;
      image.height = frame.rows;
      imageData = imageContext.createImageData(frame.columns, frame.rows);
      rgba = new Uint32Array(imageData.data.buffer);
      colourInverted = null;
    },
    setLut(table) {
      const colours = new Uint32Array(table.length);
      for (let i = 0; i < table.length; i++) colours[i] = 0xff000000 | (table[i] * 0x010101);
      const values = frame.values;
      for (let p = 0; p < values.length; p++) rgba[p] = colours[values[p]];
      imageContext.putImageData(imageData, 0, 0);
    },
    draw(s, ox, oy, invertColour) {
      context.setTransform(1, 0, 0, 1, 0, 0);
      context.fillStyle = "#000";
      context.fillRect(0, 0, canvas.width, canvas.height);
      if (!frame) return;
      if (frame.kind === "colour" && colourInverted !== invertColour) {
        paintColour(invertColour);
        colourInverted = invertColour;
      }
      context.imageSmoothingEnabled = s < 1;
      context.setTransform(s, 0, 0, s, ox, oy);
      context.drawImage(image, 0, 0);
      context.setTransform(1, 0, 0, 1, 0, 0);
    },
    clear() { frame = null; this.draw(); },
    greys() {
      const { width, height } = image;
      return { width, height, data: imageContext.getImageData(0, 0, width, height).data, bottomUp: false };
    },
  };
}
