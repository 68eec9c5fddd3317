"""The GL backend: randomized scenes rendered with moderngl on an EGL standalone context.

On a CPU machine EGL gives Mesa llvmpipe; on an NVIDIA GPU the vendor EGL. One pass draws into two targets
(MRT): the RGB image and an 8-bit object-id image (0 = background, 1..n = the frame's labelled objects,
n+1.. = distractors, which are never labelled). Tight boxes come from the id image, so they cover visible
pixels only (like Replicator's bounding_box_2d_tight). The visible fraction of an object is its visible
pixels over the pixels it covers inside the image when drawn alone. Alone coverage is only counted for
objects that something else really hides: another object's id inside this object's screen rect, from an
object whose depth range starts in front of this one's. It is counted without any readback: the object is
drawn again over the finished frame with colour writes masked off and a samples-passed occlusion query
(see _COVERAGE_FRAGMENT_SHADER). render_detailed queues these draws before the readback, so they run in
the same flush; render_frame draws them only for the few objects whose drop decision depends on them.

Speed: meshes, distractor shapes and programs are uploaded once; per frame only uniforms change. Background,
lighting and every colour jitter run in the shaders, so the CPU only reads back the image and the 8-bit id
image; boxes come from each object's screen-rect window of the id image, not from whole-image passes. No MSAA.
Render processes should set OPENBLAS_NUM_THREADS=1 before numpy loads (OpenBLAS threads fight llvmpipe's).
"""

from __future__ import annotations

import colorsys
import math
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import numpy as np

from isaac_jobs.backends import BackendUnavailableError
from isaac_jobs.dataset import Box, keep_box
from isaac_jobs.mesh import Mesh
from isaac_jobs.spec import PROCEDURAL_BACKGROUNDS, SceneSpec

BACKGROUND_IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".webp")
BACKGROUND_TEXTURE_CACHE = 32
DEFAULT_SHININESS: Final = 32.0
"""Highlight exponent of meshes that keep their own look, and of distractors."""
"""User background images kept on the GPU at once (least recently used are released)."""

_VERTEX_SHADER = """
#version 330
uniform mat4 mvp;
uniform mat4 model;
uniform mat3 normal_matrix;
in vec3 in_position;
in vec3 in_normal;
in vec2 in_uv;
in vec3 in_color;
out vec3 v_world;
out vec3 v_normal;
out vec2 v_uv;
out vec3 v_color;
void main() {
    v_world = (model * vec4(in_position, 1.0)).xyz;
    v_normal = normal_matrix * in_normal;
    v_uv = in_uv;
    v_color = in_color;
    gl_Position = mvp * vec4(in_position, 1.0);
}
"""

# Image-level jitter shared by the background and object shaders: applying it per fragment equals applying it
# to the finished image (no blending), and costs nothing extra.
_IMAGE_JITTER = """
uniform float image_brightness;
uniform float image_contrast;
uniform float image_saturation;
uniform float image_noise;
uniform uint noise_seed;
uint pcg(uint v) {
    uint state = v * 747796405u + 2891336453u;
    uint word = ((state >> ((state >> 28u) + 4u)) ^ state) * 277803737u;
    return (word >> 22u) ^ word;
}
float hash01(uvec3 p) {
    return float(pcg(p.x ^ pcg(p.y ^ pcg(p.z)))) / 4294967295.0;
}
vec3 finish_image(vec3 c) {
    float luma = dot(c, vec3(0.299, 0.587, 0.114));
    c = mix(vec3(luma), c, image_saturation);
    c = (c - 0.5) * image_contrast + 0.5;
    c *= image_brightness;
    uvec2 p = uvec2(gl_FragCoord.xy);
    // Box-Muller from two hashes: Gaussian sensor noise, reproducible per (frame seed, pixel).
    float u1 = max(hash01(uvec3(p, noise_seed)), 1e-7);
    float u2 = hash01(uvec3(p, noise_seed ^ 0x9E3779B9u));
    c += image_noise * sqrt(-2.0 * log(u1)) * cos(6.2831853 * u2);
    return clamp(c, 0.0, 1.0);
}
"""

_OBJECT_FRAGMENT_SHADER = (
    """
#version 330
uniform int color_mode;          // 0 flat base colour, 1 vertex colours, 2 texture
uniform vec3 base_color;
uniform sampler2D albedo_texture;
uniform uint object_id;
uniform vec3 eye;
uniform int light_count;
uniform vec3 light_direction[4];  // towards the light
uniform vec3 light_color[4];
uniform float ambient;
uniform float object_brightness;
uniform float object_saturation;
uniform mat3 hue_rotation;
uniform float specular;
uniform float shininess;          // Blinn-Phong exponent (from roughness)
uniform float metallic;           // 0 dielectric: white highlight; 1 metal: no diffuse, albedo-tinted highlight
in vec3 v_world;
in vec3 v_normal;
in vec2 v_uv;
in vec3 v_color;
layout(location = 0) out vec4 out_color;
layout(location = 1) out uint out_id;
"""
    + _IMAGE_JITTER
    + """
void main() {
    vec3 albedo = base_color;
    if (color_mode == 1) albedo = v_color;
    else if (color_mode == 2) albedo = texture(albedo_texture, v_uv).rgb;
    albedo = hue_rotation * albedo;
    float luma = dot(albedo, vec3(0.299, 0.587, 0.114));
    albedo = clamp(mix(vec3(luma), albedo, object_saturation) * object_brightness, 0.0, 1.0);
    vec3 view = normalize(eye - v_world);
    vec3 n = normalize(v_normal);
    if (dot(n, view) < 0.0) n = -n;  // two-sided: meshes are not always closed or consistently wound
    vec3 lit = vec3(ambient) * albedo;
    for (int i = 0; i < light_count; ++i) {
        vec3 l = light_direction[i];
        float diffuse = max(dot(n, l), 0.0);
        float highlight = pow(max(dot(n, normalize(l + view)), 0.0), shininess) * mix(specular, 1.0, metallic);
        lit += light_color[i] * (diffuse * albedo * (1.0 - metallic) + highlight * mix(vec3(1.0), albedo, metallic));
    }
    out_color = vec4(finish_image(lit), 1.0);
    out_id = object_id;
}
"""
)

_BACKGROUND_VERTEX_SHADER = """
#version 330
out vec2 v_uv;
void main() {
    vec2 corner = vec2(float((gl_VertexID << 1) & 2), float(gl_VertexID & 2));
    v_uv = corner;  // (0,0) top-left of the image: the projection flips y so rows read back top-down
    gl_Position = vec4(corner * 2.0 - 1.0, 1.0, 1.0);
}
"""

_BACKGROUND_FRAGMENT_SHADER = (
    """
#version 330
uniform int kind;                 // index into PROCEDURAL_BACKGROUNDS, or -1 for a user image
uniform vec3 color_a;
uniform vec3 color_b;
uniform vec2 direction;
uniform float frequency;
uniform vec2 offset;
uniform sampler2D image;
uniform vec4 crop;                // image uv = crop.xy + v_uv * crop.zw
uniform float aspect;
in vec2 v_uv;
layout(location = 0) out vec4 out_color;
layout(location = 1) out uint out_id;
"""
    + _IMAGE_JITTER
    + """
float value_noise(vec2 p) {
    vec2 i = floor(p);
    vec2 f = fract(p);
    f = f * f * (3.0 - 2.0 * f);
    uvec2 q = uvec2(ivec2(i) + 4096);
    float a = hash01(uvec3(q, noise_seed));
    float b = hash01(uvec3(q + uvec2(1u, 0u), noise_seed));
    float c = hash01(uvec3(q + uvec2(0u, 1u), noise_seed));
    float d = hash01(uvec3(q + uvec2(1u, 1u), noise_seed));
    return mix(mix(a, b, f.x), mix(c, d, f.x), f.y);
}
void main() {
    vec2 p = vec2(v_uv.x * aspect, v_uv.y);
    float along = dot(p - 0.5, direction);
    vec3 c;
    if (kind == 0) {
        c = mix(color_a, color_b, clamp(along + 0.5, 0.0, 1.0));
    } else if (kind == 1) {
        vec2 q = p * frequency + offset;
        float n = 0.5 * value_noise(q) + 0.25 * value_noise(q * 2.03) + 0.125 * value_noise(q * 4.01)
                + 0.125 * value_noise(q * 8.07);
        c = mix(color_a, color_b, n);
    } else if (kind == 2) {
        vec2 r = mat2(direction.x, direction.y, -direction.y, direction.x) * p * frequency + offset;
        c = mod(floor(r.x) + floor(r.y), 2.0) < 0.5 ? color_a : color_b;
    } else if (kind == 3) {
        c = mix(color_a, color_b, step(0.5, fract(along * frequency + offset.x)));
    } else if (kind == 4) {
        c = color_a;
    } else {
        c = texture(image, crop.xy + v_uv * crop.zw).rgb;
    }
    out_color = vec4(finish_image(c), 1.0);
    out_id = 0u;
}
"""
)

_COVERAGE_VERTEX_SHADER = """
#version 330
uniform mat4 mvp;
in vec3 in_position;
void main() { gl_Position = mvp * vec4(in_position, 1.0); }
"""

# Alone coverage: drawn into the main framebuffer after the frame, colour writes masked off, counted by a
# samples-passed query. Each object writes one constant depth, larger than everything before it (the depth
# buffer is first cleared to 0) and tested with ">": a pixel passes once per object however often the mesh
# overlaps itself there, so the query result is the object's pixel count inside the image when drawn alone.
_COVERAGE_FRAGMENT_SHADER = """
#version 330
uniform float coverage_depth;
void main() { gl_FragDepth = coverage_depth; }
"""

_NEAR_PLANE = 0.01
_FAR_PLANE = 1000.0


@dataclass
class _GpuMesh:
    """A mesh uploaded once: its vertex arrays for the main and the coverage program, and its bounds."""

    vao: Any
    coverage_vao: Any
    texture: Any | None
    color_mode: int
    base_color: tuple[float, float, float]
    has_appearance: bool  # see Mesh.has_appearance
    center: np.ndarray
    longest_side: float
    corners: np.ndarray  # (8, 4) homogeneous bounding-box corners, local frame
    buffers: list[Any] = field(default_factory=list)


@dataclass
class ObjectInstance:
    """One drawn object of a frame, with what the id buffer says about it (pixel units, max exclusive)."""

    object_id: int  # value in the id buffer
    class_id: int  # -1 for distractors (never labelled)
    mesh_name: str
    visible_pixels: int = 0
    # None when nothing occludes it (visible fraction 1), or, from render_frame, when the drop rule did not
    # need it: its visible fraction is then visible pixels / screen-rect area, a lower bound already kept.
    alone_pixels: int | None = None
    raw_box: tuple[int, int, int, int] | None = None  # x_min, y_min, x_max, y_max of visible pixels
    visible_fraction: float = 0.0


@dataclass
class RenderedFrame:
    frame_index: int
    rgb: np.ndarray  # (H, W, 3) uint8, row 0 = top
    ids: np.ndarray  # (H, W) uint8 object ids
    objects: list[ObjectInstance]
    boxes: list[Box]  # kept boxes (after keep_box)


@dataclass
class _Placed:
    mesh: _GpuMesh
    model: np.ndarray
    color_jitter: tuple[float, float, np.ndarray]  # brightness, saturation, hue rotation
    base_color: tuple[float, float, float] | None  # distractors and meshes without appearance: a random flat colour
    instance: ObjectInstance
    surface: tuple[float, float] = (DEFAULT_SHININESS, 0.0)  # Blinn-Phong exponent, metallic
    rect: tuple[int, int, int, int] = (0, 0, 0, 0)  # conservative screen rect x0, y0, x1, y1
    depth: tuple[float, float] = (0.0, 0.0)  # view depth range of its bounding box


def _rotation_x(a: float) -> np.ndarray:
    c, s = math.cos(a), math.sin(a)
    return np.array([[1, 0, 0], [0, c, -s], [0, s, c]], dtype=np.float64)


def _rotation_y(a: float) -> np.ndarray:
    c, s = math.cos(a), math.sin(a)
    return np.array([[c, 0, s], [0, 1, 0], [-s, 0, c]], dtype=np.float64)


def _rotation_z(a: float) -> np.ndarray:
    c, s = math.cos(a), math.sin(a)
    return np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]], dtype=np.float64)


def _hue_rotation(degrees: float) -> np.ndarray:
    """Rotation of RGB about the grey axis (Rodrigues)."""
    angle = math.radians(degrees)
    axis = np.full(3, 1 / math.sqrt(3))
    cross = np.array([[0, -axis[2], axis[1]], [axis[2], 0, -axis[0]], [-axis[1], axis[0], 0]])
    return np.eye(3) * math.cos(angle) + math.sin(angle) * cross + (1 - math.cos(angle)) * np.outer(axis, axis)


def _look_at(eye: np.ndarray, target: np.ndarray, roll: float) -> np.ndarray:
    forward = target - eye
    forward /= np.linalg.norm(forward)
    up = np.array([0.0, 0.0, 1.0])
    if abs(float(np.dot(forward, up))) > 0.999:
        up = np.array([0.0, 1.0, 0.0])
    right = np.cross(forward, up)
    right /= np.linalg.norm(right)
    true_up = np.cross(right, forward)
    c, s = math.cos(roll), math.sin(roll)
    right, true_up = c * right + s * true_up, -s * right + c * true_up
    view = np.eye(4)
    view[0, :3], view[1, :3], view[2, :3] = right, true_up, -forward
    view[:3, 3] = -view[:3, :3] @ eye
    return view


def _perspective(fov_y_deg: float, aspect: float) -> np.ndarray:
    f = 1.0 / math.tan(math.radians(fov_y_deg) / 2)
    proj = np.zeros((4, 4))
    proj[0, 0] = f / aspect
    proj[1, 1] = -f  # flipped: GL row 0 becomes image row 0, so readback needs no flip
    proj[2, 2] = (_FAR_PLANE + _NEAR_PLANE) / (_NEAR_PLANE - _FAR_PLANE)
    proj[2, 3] = 2 * _FAR_PLANE * _NEAR_PLANE / (_NEAR_PLANE - _FAR_PLANE)
    proj[3, 2] = -1.0
    return proj


def _gl_matrix(matrix: np.ndarray) -> bytes:
    """Column-major float32 bytes, as GL uniforms expect."""
    return np.ascontiguousarray(matrix.T, dtype="f4").tobytes()


def _uniform(rng: np.random.Generator, bounds: tuple[float, float]) -> float:
    return float(rng.uniform(bounds[0], bounds[1])) if bounds[1] > bounds[0] else float(bounds[0])


def _integer(rng: np.random.Generator, bounds: tuple[int, int]) -> int:
    return int(rng.integers(bounds[0], bounds[1] + 1))


def shininess_from_roughness(roughness: float) -> float:
    """Blinn-Phong exponent matching a GGX-style roughness (alpha = roughness^2, n = 2 / alpha^2 - 2)."""
    alpha = max(roughness, 0.05) ** 2
    return float(min(max(2.0 / alpha**2 - 2.0, 1.0), 1024.0))


def untextured_appearance(
    rng: np.random.Generator, spec: SceneSpec
) -> tuple[tuple[float, float, float], tuple[float, float]]:
    """One instance's random look (spec ``untextured_*``): albedo RGB, and (Blinn-Phong exponent, metallic)."""
    hue = _uniform(rng, spec.untextured_hue_deg) / 360.0 % 1.0
    rgb = colorsys.hsv_to_rgb(hue, _uniform(rng, spec.untextured_saturation), _uniform(rng, spec.untextured_value))
    roughness, metallic = _uniform(rng, spec.untextured_roughness), _uniform(rng, spec.untextured_metallic)
    return (rgb[0], rgb[1], rgb[2]), (shininess_from_roughness(roughness), metallic)


def distractor_meshes() -> dict[str, Mesh]:
    """Unit-size procedural shapes (longest side about 1) for distractors; never labelled."""
    import trimesh

    shapes = {
        "box": trimesh.creation.box(extents=(1.0, 0.7, 0.5)),
        "sphere": trimesh.creation.icosphere(subdivisions=2, radius=0.5),
        "cylinder": trimesh.creation.cylinder(radius=0.3, height=1.0, sections=24),
        "cone": trimesh.creation.cone(radius=0.4, height=1.0, sections=24),
        "torus": trimesh.creation.torus(major_radius=0.35, minor_radius=0.12, major_sections=32, minor_sections=12),
        "capsule": trimesh.creation.capsule(height=0.6, radius=0.2, count=(16, 16)),
    }
    return {
        name: Mesh(
            name=f"distractor-{name}",
            class_name="",
            source=Path(f"<distractor:{name}>"),
            positions=np.asarray(shape.vertices, dtype=np.float32),
            faces=np.asarray(shape.faces, dtype=np.int32),
            normals=np.asarray(shape.vertex_normals, dtype=np.float32),
        )
        for name, shape in shapes.items()
    }


def create_context() -> Any:
    """A headless EGL context (llvmpipe on CPU, NVIDIA EGL on a GPU), or a clear error naming what is missing."""
    import moderngl

    try:
        return moderngl.create_standalone_context(require=330, backend="egl")  # type: ignore[arg-type]
    except Exception as err:
        raise BackendUnavailableError(
            f"the gl backend needs an EGL OpenGL 3.3 context and could not create one ({err}). "
            "On Debian/Ubuntu install libegl1 libegl-mesa0 libgl1-mesa-dri libgl1 (Mesa llvmpipe renders on CPU)."
        ) from err


class GLRenderer:
    """Renders frames of ``spec`` with ``meshes`` as labelled objects; class ids index ``class_names``."""

    def __init__(self, meshes: Sequence[Mesh], class_names: Sequence[str], spec: SceneSpec) -> None:
        if not meshes:
            raise ValueError("GLRenderer needs at least one mesh")
        self.spec = spec
        self.class_names = list(class_names)
        unknown = sorted({m.class_name for m in meshes} - set(self.class_names))
        if unknown:
            raise ValueError(f"meshes of classes {unknown} are not in class_names {self.class_names}")
        self.ctx = create_context()
        self.width, self.height = spec.width, spec.height
        ctx = self.ctx
        self.program = ctx.program(vertex_shader=_VERTEX_SHADER, fragment_shader=_OBJECT_FRAGMENT_SHADER)
        self.background_program = ctx.program(
            vertex_shader=_BACKGROUND_VERTEX_SHADER, fragment_shader=_BACKGROUND_FRAGMENT_SHADER
        )
        self.coverage_program = ctx.program(
            vertex_shader=_COVERAGE_VERTEX_SHADER, fragment_shader=_COVERAGE_FRAGMENT_SHADER
        )
        self.background_vao = ctx.vertex_array(self.background_program, [])
        size = (self.width, self.height)
        self._color = ctx.renderbuffer(size, 4)
        self._ids = ctx.renderbuffer(size, 1, dtype="u1")
        self._depth = ctx.depth_renderbuffer(size)
        self.fbo = ctx.framebuffer([self._color, self._ids], self._depth)
        # The same colour and depth without the id target: what a renderer of images alone would draw into
        # (render_image, the benchmark's bare side).
        self.image_fbo = ctx.framebuffer([self._color], self._depth)
        self._coverage_queries: list[Any] = []  # samples-passed queries, grown on demand and reused
        self.program["albedo_texture"].value = 0
        self.background_program["image"].value = 1
        # Groups drawn from: class -> its meshes, in the stable order given.
        self.meshes = list(meshes)
        self._gpu_meshes = [self._upload(mesh) for mesh in self.meshes]
        self._by_class: list[list[int]] = [
            [i for i, m in enumerate(self.meshes) if m.class_name == name] for name in self.class_names
        ]
        self._drawable_classes = [c for c, members in enumerate(self._by_class) if members]
        distractors = distractor_meshes()
        self._distractors = [self._upload(distractors[name]) for name in spec.distractor_shapes]
        self._background_images = self._list_background_images()
        self._background_textures: OrderedDict[Path, Any] = OrderedDict()
        self._last_view_projection = np.eye(4)

    @property
    def renderer_info(self) -> dict[str, str]:
        info = self.ctx.info
        return {"backend": "gl", "gl_renderer": str(info["GL_RENDERER"]), "gl_version": str(info["GL_VERSION"])}

    # ---------------------------------------------------------------------------------------------- setup
    def _upload(self, mesh: Mesh) -> _GpuMesh:
        ctx = self.ctx
        count = mesh.positions.shape[0]
        uvs = mesh.uvs if mesh.uvs is not None else np.zeros((count, 2), np.float32)
        colors = mesh.colors if mesh.colors is not None else np.ones((count, 3), np.float32)
        interleaved = np.hstack([mesh.positions, mesh.normals, uvs, colors]).astype("f4")
        vbo = ctx.buffer(interleaved.tobytes())
        ibo = ctx.buffer(np.ascontiguousarray(mesh.faces, dtype="i4").tobytes())
        layout = (vbo, "3f 3f 2f 3f", "in_position", "in_normal", "in_uv", "in_color")
        vao = ctx.vertex_array(self.program, [layout], index_buffer=ibo, index_element_size=4)
        coverage_vao = ctx.vertex_array(
            self.coverage_program, [(vbo, "3f 32x", "in_position")], index_buffer=ibo, index_element_size=4
        )
        texture = None
        color_mode = 0
        if mesh.texture is not None and mesh.uvs is not None:
            image = np.ascontiguousarray(np.flipud(mesh.texture[..., :3]), dtype=np.uint8)  # row 0 -> v = 0
            texture = ctx.texture((image.shape[1], image.shape[0]), 3, image.tobytes(), alignment=1)
            texture.build_mipmaps()
            texture.repeat_x = texture.repeat_y = True
            color_mode = 2
        elif mesh.colors is not None:
            color_mode = 1
        low, high = mesh.bounds
        corners = np.array(
            [[x, y, z, 1.0] for x in (low[0], high[0]) for y in (low[1], high[1]) for z in (low[2], high[2])]
        )
        return _GpuMesh(
            vao=vao,
            coverage_vao=coverage_vao,
            texture=texture,
            color_mode=color_mode,
            base_color=tuple(float(c) for c in mesh.base_color),  # type: ignore[arg-type]
            has_appearance=mesh.has_appearance,
            center=(low + high).astype(np.float64) / 2,
            longest_side=max(float(np.max(high - low)), 1e-9),
            corners=corners,
            buffers=[vbo, ibo],
        )

    def _list_background_images(self) -> list[Path]:
        folder = self.spec.background_images_dir
        if folder is None:
            return []
        images = sorted(
            p for p in Path(folder).rglob("*") if p.is_file() and p.suffix.lower() in BACKGROUND_IMAGE_EXTENSIONS
        )
        if not images and not self.spec.backgrounds:
            raise ValueError(f"background_images_dir {folder}: no images ({', '.join(BACKGROUND_IMAGE_EXTENSIONS)})")
        return images

    def _background_texture(self, path: Path) -> Any | None:
        if path in self._background_textures:
            self._background_textures.move_to_end(path)
            return self._background_textures[path]
        from PIL import Image, UnidentifiedImageError

        try:
            with Image.open(path) as opened:
                image = opened.convert("RGB")
        except (OSError, UnidentifiedImageError) as err:
            print(f"background image {path}: unreadable, using a procedural background ({err})")
            return None
        image.thumbnail((2048, 2048))
        # Row 0 of the image at v = 0 matches the background shader's top-left uv origin.
        texture = self.ctx.texture(image.size, 3, image.tobytes(), alignment=1)
        self._background_textures[path] = texture
        if len(self._background_textures) > BACKGROUND_TEXTURE_CACHE:
            _, evicted = self._background_textures.popitem(last=False)
            evicted.release()
        return texture

    # ---------------------------------------------------------------------------------------------- frame
    def render_frame(self, frame_index: int) -> tuple[np.ndarray, list[Box]]:
        """RGB (H, W, 3) uint8 and the kept tight boxes; depends only on (spec.seed, frame_index).

        The boxes equal render_detailed's. An object's alone coverage is drawn here only when the drop rule
        needs it: alone pixels never exceed the object's screen rect, so one whose visible pixels already make
        min_visible_fraction of that rect is kept whatever its exact fraction (most partly hidden objects).
        """
        placed = self._draw_frame(frame_index, self.fbo)
        rgb, ids = self._read_frame()
        frame = self._label(frame_index, rgb, ids, placed, {}, exact_visibility=False)
        return frame.rgb, frame.boxes

    def render_detailed(self, frame_index: int) -> RenderedFrame:
        """Like render_frame, plus the id image and per-object visibility (what the boxes were made from)."""
        placed = self._draw_frame(frame_index, self.fbo)
        # Alone coverage of every object that may be hidden is queued behind the frame: the rasterizer runs
        # both in the one flush the readback causes, and the counts arrive with it, with no second readback.
        maybe_hidden = [p for p in placed if p.instance.class_id >= 0 and self._occluders_in_front(p, placed)]
        queries = self._draw_alone_coverage(maybe_hidden)
        rgb, ids = self._read_frame()
        alone = {id(item): int(query.samples) for item, query in zip(maybe_hidden, queries, strict=True)}
        return self._label(frame_index, rgb, ids, placed, alone, exact_visibility=True)

    def render_image(self, frame_index: int) -> np.ndarray:
        """Only the RGB image of the frame: no id target, no coverage, no labels (the benchmark's bare render)."""
        self._draw_frame(frame_index, self.image_fbo)
        return self._read_rgb(self.image_fbo)

    def _read_rgb(self, fbo: Any) -> np.ndarray:
        rgb = np.frombuffer(fbo.read(components=3, attachment=0, alignment=1), np.uint8)
        return rgb.reshape(self.height, self.width, 3)

    def _read_frame(self) -> tuple[np.ndarray, np.ndarray]:
        rgb = self._read_rgb(self.fbo)
        ids = np.frombuffer(self.fbo.read(components=1, attachment=1, alignment=1, dtype="u1"), np.uint8)
        return rgb, ids.reshape(self.height, self.width)

    def _draw_frame(self, frame_index: int, fbo: Any) -> list[_Placed]:
        rng = np.random.default_rng([self.spec.seed, frame_index])
        spec, ctx = self.spec, self.ctx
        view, projection, eye = self._sample_camera(rng)
        view_projection = projection @ view
        placed = self._sample_objects(rng, view_projection, view)
        lights = self._sample_lights(rng)
        image_jitter = {
            "image_brightness": _uniform(rng, spec.image_brightness),
            "image_contrast": _uniform(rng, spec.image_contrast),
            "image_saturation": _uniform(rng, spec.image_saturation),
            "image_noise": _uniform(rng, spec.image_noise),
            "noise_seed": int(rng.integers(0, 2**32)),
        }
        self._last_view_projection = view_projection
        fbo.use()
        ctx.enable(ctx.DEPTH_TEST)
        # The background writes depth 1.0 everywhere with an always-pass test: it doubles as the depth clear.
        ctx.depth_func = "1"
        self._draw_background(rng, image_jitter)
        ctx.depth_func = "<"
        self._draw_objects(placed, view_projection, eye, lights, image_jitter)
        return placed

    def _sample_camera(self, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        spec = self.spec
        distance = _uniform(rng, spec.camera_distance)
        elevation = math.radians(_uniform(rng, spec.camera_elevation_deg))
        azimuth = math.radians(_uniform(rng, spec.camera_azimuth_deg))
        fov = _uniform(rng, spec.camera_fov_deg)
        roll = math.radians(_uniform(rng, spec.camera_roll_deg))
        target = rng.uniform(-spec.camera_target_jitter, spec.camera_target_jitter, 3)
        direction = np.array(
            [math.cos(elevation) * math.cos(azimuth), math.cos(elevation) * math.sin(azimuth), math.sin(elevation)]
        )
        eye = target + distance * direction
        return _look_at(eye, target, roll), _perspective(fov, self.width / self.height), eye

    def _sample_pose(self, rng: np.random.Generator, gpu: _GpuMesh, size: tuple[float, float] | None) -> np.ndarray:
        spec = self.spec
        scale = 1.0 if size is None else _uniform(rng, size) / gpu.longest_side
        rotation = (
            _rotation_z(math.radians(_uniform(rng, spec.rotation_yaw_deg)))
            @ _rotation_y(math.radians(_uniform(rng, spec.rotation_pitch_deg)))
            @ _rotation_x(math.radians(_uniform(rng, spec.rotation_roll_deg)))
        )
        position = np.array(
            [_uniform(rng, spec.position_x), _uniform(rng, spec.position_y), _uniform(rng, spec.position_z)]
        )
        model = np.eye(4)
        model[:3, :3] = rotation * scale
        model[:3, 3] = position - model[:3, :3] @ gpu.center
        return model

    def _sample_objects(self, rng: np.random.Generator, view_projection: np.ndarray, view: np.ndarray) -> list[_Placed]:
        spec = self.spec
        placed: list[_Placed] = []
        for number in range(_integer(rng, spec.objects_per_frame)):
            class_id = self._drawable_classes[int(rng.integers(len(self._drawable_classes)))]
            members = self._by_class[class_id]
            mesh_index = members[int(rng.integers(len(members)))]
            gpu = self._gpu_meshes[mesh_index]
            model = self._sample_pose(rng, gpu, spec.object_size)
            jitter = (
                _uniform(rng, spec.object_brightness),
                _uniform(rng, spec.object_saturation),
                _hue_rotation(_uniform(rng, spec.object_hue_shift_deg)),
            )
            instance = ObjectInstance(number + 1, class_id, self.meshes[mesh_index].name)
            if gpu.has_appearance or spec.untextured_appearance == "none":
                placed.append(_Placed(gpu, model, jitter, None, instance))
            else:
                albedo, surface = untextured_appearance(rng, spec)
                placed.append(_Placed(gpu, model, jitter, albedo, instance, surface=surface))
        for number in range(len(placed), len(placed) + _integer(rng, spec.distractors_per_frame)):
            shape = int(rng.integers(len(self._distractors)))
            gpu = self._distractors[shape]
            model = self._sample_pose(rng, gpu, spec.distractor_size)
            color = tuple(float(c) for c in rng.uniform(0.05, 0.95, 3))
            instance = ObjectInstance(number + 1, -1, spec.distractor_shapes[shape])
            placed.append(_Placed(gpu, model, (1.0, 1.0, np.eye(3)), color, instance))  # type: ignore[arg-type]
        for item in placed:
            item.rect, item.depth = self._screen_rect(item, view_projection, view)
        return placed

    def _screen_rect(
        self, item: _Placed, view_projection: np.ndarray, view: np.ndarray
    ) -> tuple[tuple[int, int, int, int], tuple[float, float]]:
        world = item.model @ item.mesh.corners.T
        depth = -(view @ world)[2]
        clip = view_projection @ world
        full = (0, 0, self.width, self.height)
        if np.any(clip[3] <= _NEAR_PLANE):
            return full, (float(depth.min()), float(depth.max()))
        x = (clip[0] / clip[3] * 0.5 + 0.5) * self.width
        y = (clip[1] / clip[3] * 0.5 + 0.5) * self.height
        rect = (
            max(0, math.floor(x.min()) - 1),
            max(0, math.floor(y.min()) - 1),
            min(self.width, math.ceil(x.max()) + 1),
            min(self.height, math.ceil(y.max()) + 1),
        )
        return rect, (float(depth.min()), float(depth.max()))

    def _sample_lights(self, rng: np.random.Generator) -> dict[str, Any]:
        spec = self.spec
        count = _integer(rng, spec.light_count)
        directions = np.zeros((4, 3))
        colors = np.zeros((4, 3))
        for i in range(count):
            elevation = math.radians(_uniform(rng, spec.light_elevation_deg))
            azimuth = math.radians(_uniform(rng, spec.light_azimuth_deg))
            directions[i] = [
                math.cos(elevation) * math.cos(azimuth),
                math.cos(elevation) * math.sin(azimuth),
                math.sin(elevation),
            ]
            tint = 1 + rng.uniform(-spec.light_color_jitter, spec.light_color_jitter, 3)
            colors[i] = _uniform(rng, spec.light_intensity) * tint
        return {
            "light_count": count,
            "light_direction": directions,
            "light_color": colors,
            "ambient": _uniform(rng, spec.ambient_intensity),
            "specular": float(rng.uniform(0.0, 0.4)),
        }

    def _draw_background(self, rng: np.random.Generator, image_jitter: dict[str, Any]) -> None:
        spec, program = self.spec, self.background_program
        use_image = bool(self._background_images) and (
            not spec.backgrounds or rng.uniform() < spec.background_image_probability
        )
        kind = -1
        texture = None
        if use_image:
            path = self._background_images[int(rng.integers(len(self._background_images)))]
            texture = self._background_texture(path)
            # A random crop covering at least half of each side, flipped half the time.
            w, h = float(rng.uniform(0.5, 1.0)), float(rng.uniform(0.5, 1.0))
            x, y = float(rng.uniform(0, 1 - w)), float(rng.uniform(0, 1 - h))
            crop = (x + w, y, -w, h) if rng.uniform() < 0.5 else (x, y, w, h)
            program["crop"].value = crop
        if texture is not None:
            texture.use(location=1)
        else:
            choices = spec.backgrounds or PROCEDURAL_BACKGROUNDS
            kind = PROCEDURAL_BACKGROUNDS.index(choices[int(rng.integers(len(choices)))])
        angle = float(rng.uniform(0, 2 * math.pi))
        program["kind"].value = kind
        program["color_a"].value = tuple(float(c) for c in rng.uniform(0, 1, 3))
        program["color_b"].value = tuple(float(c) for c in rng.uniform(0, 1, 3))
        program["direction"].value = (math.cos(angle), math.sin(angle))
        program["frequency"].value = float(rng.uniform(2, 24))
        program["offset"].value = tuple(float(c) for c in rng.uniform(0, 100, 2))
        program["aspect"].value = self.width / self.height
        self._set_image_jitter(program, image_jitter)
        self.background_vao.render(mode=self.ctx.TRIANGLES, vertices=3)

    @staticmethod
    def _set_image_jitter(program: Any, image_jitter: dict[str, Any]) -> None:
        for name, value in image_jitter.items():
            program[name].value = value

    def _draw_objects(
        self,
        placed: Sequence[_Placed],
        view_projection: np.ndarray,
        eye: np.ndarray,
        lights: dict[str, Any],
        image_jitter: dict[str, Any],
    ) -> None:
        program = self.program
        self._set_image_jitter(program, image_jitter)
        program["eye"].value = tuple(float(c) for c in eye)
        program["light_count"].value = lights["light_count"]
        program["light_direction"].write(lights["light_direction"].astype("f4").tobytes())
        program["light_color"].write(lights["light_color"].astype("f4").tobytes())
        program["ambient"].value = lights["ambient"]
        program["specular"].value = lights["specular"]
        for item in placed:
            gpu = item.mesh
            program["mvp"].write(_gl_matrix(view_projection @ item.model))
            program["model"].write(_gl_matrix(item.model))
            program["normal_matrix"].write(_gl_matrix(np.linalg.inv(item.model[:3, :3]).T))
            program["object_id"].value = item.instance.object_id
            program["color_mode"].value = 0 if item.base_color is not None else gpu.color_mode
            program["base_color"].value = item.base_color if item.base_color is not None else gpu.base_color
            brightness, saturation, hue = item.color_jitter
            program["object_brightness"].value = brightness
            program["object_saturation"].value = saturation
            program["shininess"].value, program["metallic"].value = item.surface
            program["hue_rotation"].write(_gl_matrix(hue))
            if gpu.texture is not None and item.base_color is None:
                gpu.texture.use(location=0)
            gpu.vao.render()

    # ---------------------------------------------------------------------------------------------- labels
    def _label(
        self,
        frame_index: int,
        rgb: np.ndarray,
        ids: np.ndarray,
        placed: list[_Placed],
        alone: dict[int, int],
        *,
        exact_visibility: bool,
    ) -> RenderedFrame:
        """Boxes and visibility from the id image. ``alone``: alone pixels already counted, by id(_Placed).
        Without ``exact_visibility`` only the alone pixels the drop rule depends on are counted."""
        spec = self.spec
        # Each object's pixels are looked for inside its screen rect only. The rects are conservative, but that
        # is checked rather than trusted: every id pixel belongs to exactly one object, so the in-rect counts
        # add up to the image's non-zero pixels exactly when no object has a pixel outside its rect.
        masks = [ids[p.rect[1] : p.rect[3], p.rect[0] : p.rect[2]] == p.instance.object_id for p in placed]
        counts = [int(np.count_nonzero(mask)) for mask in masks]
        if sum(counts) != int(np.count_nonzero(ids)):
            for index, item in enumerate(placed):
                whole = ids == item.instance.object_id
                if int(np.count_nonzero(whole)) != counts[index]:  # this one's bounds estimate missed pixels
                    item.rect = (0, 0, self.width, self.height)
                    masks[index], counts[index] = whole, int(np.count_nonzero(whole))
        hidden_in_part: list[_Placed] = []
        for item, mask, count in zip(placed, masks, counts, strict=True):
            instance = item.instance
            if instance.class_id < 0:  # distractors are never labelled: their pixels only served the check
                continue
            instance.visible_pixels = count
            if count == 0:
                continue
            x0, y0 = item.rect[:2]
            rows = np.flatnonzero(mask.any(axis=1))
            cols = np.flatnonzero(mask.any(axis=0))
            instance.raw_box = (x0 + int(cols[0]), y0 + int(rows[0]), x0 + int(cols[-1]) + 1, y0 + int(rows[-1]) + 1)
            instance.visible_fraction = 1.0
            if self._is_hidden_in_part(item, placed, ids):
                hidden_in_part.append(item)
        needed = hidden_in_part
        if not exact_visibility:
            # visible / rect area <= visible / alone (division rounds monotonically): kept either way.
            needed = [p for p in hidden_in_part if self._rect_fraction(p) < spec.min_visible_fraction]
        # With exact_visibility, only a rect widened above leaves a hidden object not queued before readback.
        missing = [item for item in needed if id(item) not in alone]
        queries = self._draw_alone_coverage(missing)
        alone.update((id(item), int(query.samples)) for item, query in zip(missing, queries, strict=True))
        for item in hidden_in_part:
            instance = item.instance
            if id(item) in alone:
                instance.alone_pixels = alone[id(item)]
                instance.visible_fraction = min(1.0, instance.visible_pixels / max(instance.alone_pixels, 1))
            else:
                instance.visible_fraction = self._rect_fraction(item)
        boxes: list[Box] = []
        for instance in (p.instance for p in placed):
            if instance.raw_box is None:
                continue
            box: Box = (instance.class_id, *(float(v) for v in instance.raw_box))  # type: ignore[assignment]
            kept = keep_box(
                box,
                width=self.width,
                height=self.height,
                min_side_px=spec.min_box_side_px,
                visible_fraction=instance.visible_fraction,
                min_visible_fraction=spec.min_visible_fraction,
            )
            if kept is not None:
                boxes.append(kept)
        return RenderedFrame(frame_index, rgb, ids, [p.instance for p in placed], boxes)

    @staticmethod
    def _rect_fraction(item: _Placed) -> float:
        """Visible pixels over the area of the screen rect: a lower bound of the visible fraction."""
        x0, y0, x1, y1 = item.rect
        return min(1.0, item.instance.visible_pixels / max((x1 - x0) * (y1 - y0), 1))

    @staticmethod
    def _occluders_in_front(item: _Placed, placed: Sequence[_Placed]) -> list[int]:
        """Ids of objects whose screen rect overlaps ``item``'s and whose depth range starts before its end."""
        ax0, ay0, ax1, ay1 = item.rect
        in_front = []
        for other in placed:
            if other is item:
                continue
            bx0, by0, bx1, by1 = other.rect
            if bx0 < ax1 and ax0 < bx1 and by0 < ay1 and ay0 < by1 and other.depth[0] < item.depth[1]:
                in_front.append(other.instance.object_id)
        return in_front

    def _is_hidden_in_part(self, item: _Placed, placed: Sequence[_Placed], ids: np.ndarray) -> bool:
        """Whether something hides part of ``item``: wherever it is hidden, the occluder's id is visible inside
        its screen rect, and the occluder's depth range starts in front of the end of ``item``'s."""
        x0, y0, x1, y1 = item.rect
        window = ids[y0:y1, x0:x1]
        return any(bool(np.any(window == other)) for other in self._occluders_in_front(item, placed))

    def _draw_alone_coverage(self, items: Sequence[_Placed]) -> list[Any]:
        """Queue each of ``items`` drawn alone over the finished frame; one samples-passed query per item.

        Colour writes are masked off, so the image and id targets stay as they are; only depth (no longer
        needed once the frame is drawn) is overwritten. See _COVERAGE_FRAGMENT_SHADER for why a query counts
        each covered pixel once.
        """
        if not items:
            return []
        ctx, fbo, program = self.ctx, self.fbo, self.coverage_program
        while len(self._coverage_queries) < len(items):
            self._coverage_queries.append(ctx.query(samples=True))
        fbo.color_mask = [(False, False, False, False)] * 2
        fbo.clear(depth=0.0)  # the colour mask keeps the clear off the image and id targets
        ctx.depth_func = ">"
        queries = self._coverage_queries[: len(items)]
        for number, (item, query) in enumerate(zip(items, queries, strict=True)):
            program["coverage_depth"].value = (number + 1) / (len(items) + 1)
            program["mvp"].write(_gl_matrix(self._last_view_projection @ item.model))
            with query:
                item.mesh.coverage_vao.render()
        fbo.color_mask = [(True, True, True, True)] * 2
        return queries

    def close(self) -> None:
        for texture in self._background_textures.values():
            texture.release()
        self._background_textures.clear()
        self.ctx.release()

    def __enter__(self) -> GLRenderer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
