"""The GL backend: scene plans (``isaac_jobs.scene``) rendered with moderngl on an EGL standalone context.

It renders every field of a ``ScenePlan``. From the USD assets (read by ``isaac_jobs.usd_import``, once per
process, into GPU buffers) it honours geometry, normals, UVs, display colours and the UsdPreviewSurface
``diffuseColor`` (constant, texture or display-colour reader); roughness and metallic come from the plan (a
class look's ranges, recorded in the batch plan, or the spec's), and the other preview-surface inputs are not
read (specular, emissive, opacity, normal/occlusion maps).

Realism (the plan's materials, ground and ``RealismPlan``): colourless meshes are drawn in their planned look,
with the procedural pattern (3D value noise, grain rings, stripes in the object's own coordinates, so it sticks
to the surface); shading is GGX (Trowbridge-Reitz, Schlick-GGX geometry, Schlick Fresnel, metallic workflow)
or, with ``pbr_shading`` off, the earlier Blinn-Phong with the plan's specular strength; ambient light is a
hemisphere between the background's (or the ground's) lower colour and its upper colour; each light is tinted
by its colour temperature. The ground plane is a large quad at the planned height with its own cheap shader
(flat, rough: the other lights' terms are constants summed on the CPU) writing id 0, so it hides what is below
it like the background does and boxes stay those of the objects' visible pixels. Shadows: one depth pass per
frame from the strongest (key) light into a ``shadow_map_size`` depth texture, orthographic and fitted to the
casters as that light sees them; objects and the ground read it through a comparison sampler (two rotated
taps, each 2x2-filtered: PCF soft edges; normal offset + depth bias against acne). Only the part of the ground
inside the light's shadow window uses the shadow-reading shader; the rest of the plane is drawn a millimetre
lower with a shader without the sampler, because on llvmpipe a bound shadow sampler costs on every pixel.
Other lights cast no shadows; there are no reflections. Defocus and motion blur are shader passes over the
colour target before the readback (``isaac_jobs.backends.gl_effects``, the formulas of
``isaac_jobs.camera_effects``) and exposure multiplies the image brightness, so boxes come from the sharp id
image. Draw order is objects, ground, background (at depth 1.0), so llvmpipe's early depth test skips
the background shader where something covers it.

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

import math
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from isaac_jobs.appearance import MESH_LOOK_KEY, AssetTraits, Look, has_own_appearance, kelvin_rgb
from isaac_jobs.backends import BackendUnavailableError
from isaac_jobs.backends.gl_effects import CameraEffectPasses
from isaac_jobs.dataset import Box, keep_box
from isaac_jobs.mesh import Mesh
from isaac_jobs.scene import (
    BackgroundPlan,
    MaterialPlan,
    ScenePlan,
    SceneSampler,
    direction,
    model_matrix,
)
from isaac_jobs.spec import MAX_LIGHTS, PROCEDURAL_BACKGROUNDS, SceneSpec

BACKGROUND_TEXTURE_CACHE = 32
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
out vec3 v_local;
void main() {
    v_local = in_position;
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

# Shared by the object and ground shaders (after _IMAGE_JITTER): procedural patterns and the key light's shadow.
_SURFACE = """
uniform int pattern;              // 0 none, 1 noise, 2 grain, 3 stripes, 4 checker
uniform vec3 pattern_color;
uniform float pattern_scale;      // cycles per local unit
uniform vec3 pattern_axis;
uniform uint pattern_seed;
#if SHADOWS
uniform sampler2DShadow shadow_map;
uniform mat4 light_view_projection;
uniform float shadow_texel;       // world size of a shadow-map texel
uniform float shadow_radius;      // PCF radius, texels
uniform float shadow_bias;        // depth bias in shadow-map depth units
#endif
in vec3 v_world;
in vec3 v_local;
layout(location = 0) out vec4 out_color;
layout(location = 1) out uint out_id;
float noise3(vec3 p) {
    vec3 i = floor(p);
    vec3 f = fract(p);
    f = f * f * (3.0 - 2.0 * f);
    uvec3 q = uvec3(ivec3(i) + 4096);
    uint s = pattern_seed;
    float n000 = hash01(q ^ uvec3(s)), n100 = hash01((q + uvec3(1u, 0u, 0u)) ^ uvec3(s));
    float n010 = hash01((q + uvec3(0u, 1u, 0u)) ^ uvec3(s)), n110 = hash01((q + uvec3(1u, 1u, 0u)) ^ uvec3(s));
    float n001 = hash01((q + uvec3(0u, 0u, 1u)) ^ uvec3(s)), n101 = hash01((q + uvec3(1u, 0u, 1u)) ^ uvec3(s));
    float n011 = hash01((q + uvec3(0u, 1u, 1u)) ^ uvec3(s)), n111 = hash01((q + uvec3(1u, 1u, 1u)) ^ uvec3(s));
    return mix(mix(mix(n000, n100, f.x), mix(n010, n110, f.x), f.y),
               mix(mix(n001, n101, f.x), mix(n011, n111, f.x), f.y), f.z);
}
float pattern_mix(vec3 p) {
    if (pattern == 1) return 0.65 * noise3(p) + 0.35 * noise3(p * 2.7);
    if (pattern == 2) {  // wood-like grain: rings around an axis, warped by noise
        vec3 r = p - pattern_axis * dot(p, pattern_axis);
        return smoothstep(0.2, 0.8, fract(length(r) + 0.35 * noise3(p * 0.6)));
    }
    if (pattern == 3) return step(0.5, fract(dot(p, pattern_axis)));
    if (pattern == 4) return mod(floor(p.x) + floor(p.y), 2.0);
    return 0.0;
}
#if SHADOWS
float lit_fraction(vec3 n) {
    vec4 q = light_view_projection * vec4(v_world + n * shadow_texel * 1.5, 1.0);
    vec3 c = q.xyz / q.w * 0.5 + 0.5;
    if (any(lessThan(c.xy, vec2(0.0))) || any(greaterThan(c.xy, vec2(1.0))) || c.z > 1.0) return 1.0;
    float texel = shadow_texel > 0.0 ? 1.0 / textureSize(shadow_map, 0).x : 0.0;
    float r = shadow_radius * texel;
    float z = c.z - shadow_bias;
    // Two taps across a diagonal that turns with the pixel (the 2x2 pattern hides the few taps), each a 2x2
    // hardware-filtered comparison: a soft edge about 2 x radius texels wide at the cost of two lookups.
    vec2 o = (mod(gl_FragCoord.x + gl_FragCoord.y, 2.0) < 1.0 ? vec2(0.7, 0.7) : vec2(0.7, -0.7)) * r;
    return 0.5 * (texture(shadow_map, vec3(c.xy + o, z)) + texture(shadow_map, vec3(c.xy - o, z)));
}
#else
float lit_fraction(vec3 n) { return 1.0; }
#endif
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
// Realism (issue 10): material, procedural pattern, GGX, hemisphere environment, key-light shadow map.
uniform int pbr;                  // 0 Blinn-Phong with the frame's specular strength, 1 GGX
uniform float roughness;
uniform float metallic;
uniform vec3 sky_color;           // ambient from above / below (white and white: flat ambient)
uniform vec3 ground_color;
uniform int shadow_light;         // index of the shadow-casting light, -1 for none
in vec3 v_normal;
in vec2 v_uv;
in vec3 v_color;
"""
    + _IMAGE_JITTER
    + _SURFACE
    + """
void main() {
    vec3 albedo = base_color;
    if (color_mode == 1) albedo = v_color;
    else if (color_mode == 2) albedo = texture(albedo_texture, v_uv).rgb;
    if (pattern > 0) albedo = mix(albedo, pattern_color, pattern_mix(v_local * pattern_scale));
    albedo = hue_rotation * albedo;
    float luma = dot(albedo, vec3(0.299, 0.587, 0.114));
    albedo = clamp(mix(vec3(luma), albedo, object_saturation) * object_brightness, 0.0, 1.0);
    vec3 view = normalize(eye - v_world);
    vec3 n = normalize(v_normal);
    if (dot(n, view) < 0.0) n = -n;  // two-sided: meshes are not always closed or consistently wound
    vec3 environment = mix(ground_color, sky_color, 0.5 + 0.5 * n.z);
    float key_shade = 1.0;
    if (shadow_light >= 0) key_shade = lit_fraction(n);  // once: the shadow map is read for the key light only
    vec3 lit;
    if (pbr == 0) {
        lit = ambient * environment * albedo;
        for (int i = 0; i < light_count; ++i) {
            vec3 l = light_direction[i];
            float diffuse = max(dot(n, l), 0.0);
            float highlight = pow(max(dot(n, normalize(l + view)), 0.0), 32.0) * specular;
            float shade = i == shadow_light ? key_shade : 1.0;
            lit += light_color[i] * shade * (diffuse * albedo + highlight);
        }
    } else {
        // GGX (Trowbridge-Reitz) distribution, Schlick-GGX geometry and Schlick Fresnel, metallic workflow.
        // Radiance is scaled by pi so a white Lambertian surface facing a light of intensity 1 gives 1.
        float a = max(roughness * roughness, 0.003);
        float a2 = a * a;
        float k = (roughness + 1.0) * (roughness + 1.0) / 8.0;
        vec3 f0 = mix(vec3(0.04), albedo, metallic);
        float nv = max(dot(n, view), 1e-4);
        vec3 fresnel_view = f0 + (max(vec3(1.0 - roughness), f0) - f0) * pow(1.0 - nv, 5.0);
        vec3 reflected = reflect(-view, n);
        vec3 environment_reflected = mix(ground_color, sky_color, 0.5 + 0.5 * reflected.z);
        lit = ambient * (environment * albedo * (1.0 - metallic) * (1.0 - fresnel_view)
                         + environment_reflected * fresnel_view);
        for (int i = 0; i < light_count; ++i) {
            vec3 l = light_direction[i];
            float nl = max(dot(n, l), 0.0);
            if (nl <= 0.0) continue;
            vec3 h = normalize(l + view);
            float nh = max(dot(n, h), 0.0);
            float denominator = nh * nh * (a2 - 1.0) + 1.0;
            float distribution = a2 / (3.14159265 * denominator * denominator);
            float geometry = nv / (nv * (1.0 - k) + k) * nl / (nl * (1.0 - k) + k);
            vec3 fresnel = f0 + (1.0 - f0) * pow(1.0 - max(dot(view, h), 0.0), 5.0);
            vec3 highlight = min(distribution * geometry * fresnel / (4.0 * nv * nl), vec3(40.0));
            vec3 diffuse = (1.0 - fresnel) * (1.0 - metallic) * albedo;
            float shade = i == shadow_light ? key_shade : 1.0;
            lit += light_color[i] * shade * nl * (diffuse + 3.14159265 * highlight);
        }
    }
    out_color = vec4(finish_image(lit), 1.0);
    out_id = object_id;
}
"""
)

_GROUND_VERTEX_SHADER = """
#version 330
uniform mat4 mvp;
uniform mat4 model;
in vec3 in_position;
out vec3 v_world;
out vec3 v_local;
void main() {
    v_local = in_position;
    v_world = (model * vec4(in_position, 1.0)).xyz;
    gl_Position = mvp * vec4(in_position, 1.0);
}
"""

# The ground: flat (normal +z), so every light but the key light is a constant the CPU sums (``unshadowed``);
# only the key light's share is shadowed per fragment. Rough and dielectric: no highlight. Built twice: with
# SHADOWS 1 for the part of the plane where the casters' shadows can fall (the key light's shadow window
# projected onto it), and with SHADOWS 0 for the rest: on llvmpipe a bound shadow sampler costs on every pixel.
_GROUND_FRAGMENT_SHADER = (
    """
#version 330
uniform vec3 base_color;
uniform vec3 unshadowed;
uniform vec3 key_light;
"""
    + _IMAGE_JITTER
    + _SURFACE
    + """
void main() {
    vec3 albedo = base_color;
    if (pattern > 0) albedo = mix(albedo, pattern_color, pattern_mix(v_local * pattern_scale));
    vec3 lit = albedo * (unshadowed + lit_fraction(vec3(0.0, 0.0, 1.0)) * key_light);
    out_color = vec4(finish_image(lit), 1.0);
    out_id = 0u;  // the ground is no object: it hides what is below it, as background
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

# The shadow pass: depth only, from the key light.
_SHADOW_FRAGMENT_SHADER = """
#version 330
void main() {}
"""

SHADOW_LIGHT_DISTANCE = 10.0
"""Metres from the casters' centre to the key light's (orthographic) shadow camera."""
SHADOW_DEPTH_REACH = 30.0
"""Metres the shadow map's depth range reaches beyond the farthest caster (the receiving ground)."""
GROUND_UNDERLAY_M = 0.001
"""How far below the shadow-receiving part of the ground the rest of the plane is drawn, metres."""
SHADOW_BIAS_M = 0.003
"""Depth bias against shadow acne, metres (plus a normal offset of 1.5 texels)."""


def _with_shadows(source: str, shadows: bool) -> str:
    """The shader source with SHADOWS defined (1: the key light's shadow map is read, 0: everything is lit)."""
    return source.replace("#version 330\n", f"#version 330\n#define SHADOWS {int(shadows)}\n", 1)


_NEAR_PLANE = 0.01
_FAR_PLANE = 1000.0


@dataclass
class _GpuMesh:
    """A mesh uploaded once: its vertex arrays for the main and the coverage program, and its bounds."""

    vao: Any
    coverage_vao: Any
    shadow_vao: Any
    texture: Any | None
    color_mode: int
    base_color: tuple[float, float, float]
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
    base_color: tuple[float, float, float] | None  # distractors get a random flat colour
    instance: ObjectInstance
    material: MaterialPlan | None = None
    rect: tuple[int, int, int, int] = (0, 0, 0, 0)  # conservative screen rect x0, y0, x1, y1
    depth: tuple[float, float] = (0.0, 0.0)  # view depth range of its bounding box


def _hue_rotation(degrees: float) -> np.ndarray:
    """Rotation of RGB about the grey axis (Rodrigues)."""
    angle = math.radians(degrees)
    axis = np.full(3, 1 / math.sqrt(3))
    cross = np.array([[0, -axis[2], axis[1]], [axis[2], 0, -axis[0]], [-axis[1], axis[0], 0]])
    return np.eye(3) * math.cos(angle) + math.sin(angle) * cross + (1 - math.cos(angle)) * np.outer(axis, axis)


def _cross(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """np.cross of two 3-vectors, the same arithmetic without its general-case overhead (about 15x faster)."""
    return np.array([a[1] * b[2] - a[2] * b[1], a[2] * b[0] - a[0] * b[2], a[0] * b[1] - a[1] * b[0]])


def _look_at(eye: np.ndarray, target: np.ndarray, roll: float) -> np.ndarray:
    forward = target - eye
    forward /= np.linalg.norm(forward)
    up = np.array([0.0, 0.0, 1.0])
    if abs(float(np.dot(forward, up))) > 0.999:
        up = np.array([0.0, 1.0, 0.0])
    right = _cross(forward, up)
    right /= np.linalg.norm(right)
    true_up = _cross(right, forward)
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


PATTERN_CODES = {"none": 0, "solid": 0, "noise": 1, "grain": 2, "stripes": 3, "checker": 4}
"""MaterialPlan.pattern -> the object shader's ``pattern`` uniform."""


def ground_mesh() -> Mesh:
    """A unit square (-1..1) at z = 0 facing up; the plan's ground scales and lifts it."""
    positions = np.array([[-1, -1, 0], [1, -1, 0], [1, 1, 0], [-1, 1, 0]], dtype=np.float32)
    return Mesh(
        name="ground",
        class_name="",
        source=Path("<ground>"),
        positions=positions,
        faces=np.array([[0, 1, 2], [0, 2, 3]], dtype=np.int32),
        normals=np.tile(np.array([0, 0, 1], dtype=np.float32), (4, 1)),
    )


def mesh_traits(mesh: Mesh) -> AssetTraits:
    """What the scene sampler needs of a mesh: its size, whether it has its own colours, its class look."""
    low, high = mesh.bounds
    look = mesh.extra.get(MESH_LOOK_KEY)
    return AssetTraits(
        extents=(float(high[0] - low[0]), float(high[1] - low[1]), float(high[2] - low[2])),
        own_appearance=has_own_appearance(mesh),
        look=Look.from_json(look) if look else None,
    )


def _environment_color(color: np.ndarray) -> np.ndarray:
    """A background colour as ambient tint: its hue kept, its luminance brought to 1, half-way to white."""
    color = np.clip(np.asarray(color, dtype=np.float64), 0.0, 1.0)
    luma = float(color @ np.array([0.299, 0.587, 0.114]))
    return 0.5 + 0.5 * np.clip(color / max(luma, 0.05), 0.0, 3.0)


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
        self.program = ctx.program(
            vertex_shader=_VERTEX_SHADER, fragment_shader=_with_shadows(_OBJECT_FRAGMENT_SHADER, True)
        )
        self.background_program = ctx.program(
            vertex_shader=_BACKGROUND_VERTEX_SHADER, fragment_shader=_BACKGROUND_FRAGMENT_SHADER
        )
        self.coverage_program = ctx.program(
            vertex_shader=_COVERAGE_VERTEX_SHADER, fragment_shader=_COVERAGE_FRAGMENT_SHADER
        )
        self.ground_program = ctx.program(
            vertex_shader=_GROUND_VERTEX_SHADER, fragment_shader=_with_shadows(_GROUND_FRAGMENT_SHADER, True)
        )
        self.ground_lit_program = ctx.program(
            vertex_shader=_GROUND_VERTEX_SHADER, fragment_shader=_with_shadows(_GROUND_FRAGMENT_SHADER, False)
        )
        self.shadow_program = ctx.program(
            vertex_shader=_COVERAGE_VERTEX_SHADER, fragment_shader=_SHADOW_FRAGMENT_SHADER
        )
        # The key light's shadow map: a depth texture compared in the shader (sampler2DShadow, linear = 2x2 PCF).
        shadow_size = (spec.shadow_map_size, spec.shadow_map_size)
        self._shadow_depth = ctx.depth_texture(shadow_size)
        self._shadow_depth.compare_func = "<="
        self._shadow_depth.repeat_x = self._shadow_depth.repeat_y = False
        self._shadow_fbo = ctx.framebuffer(depth_attachment=self._shadow_depth)
        self.background_vao = ctx.vertex_array(self.background_program, [])
        size = (self.width, self.height)
        self._color = ctx.texture(size, 4)  # a texture: the camera-effect passes read it
        self._ids = ctx.renderbuffer(size, 1, dtype="u1")
        self._depth = ctx.depth_renderbuffer(size)
        self.fbo = ctx.framebuffer([self._color, self._ids], self._depth)
        # The same colour and depth without the id target: what a renderer of images alone would draw into
        # (render_image, the benchmark's bare side).
        self.image_fbo = ctx.framebuffer([self._color], self._depth)
        self._coverage_queries: list[Any] = []  # samples-passed queries, grown on demand and reused
        self._effects = CameraEffectPasses(ctx, size)
        self.program["albedo_texture"].value = 0
        for program in (self.program, self.ground_program):
            if "shadow_map" in program:
                program["shadow_map"].value = 2
        if spec.shadows:
            # Bound once for good (nothing else uses unit 2). Not bound without shadows: llvmpipe then compiles the
            # shadow lookups to nothing, and a bound depth texture costs it on every object pixel even unread.
            self._shadow_depth.use(location=2)
        self.background_program["image"].value = 1
        # Groups drawn from: class -> its meshes, in the stable order given.
        self.meshes = list(meshes)
        self._gpu_meshes = [self._upload(mesh) for mesh in self.meshes]
        self.sampler = SceneSampler(
            spec, [self.class_names.index(m.class_name) for m in self.meshes], [mesh_traits(m) for m in self.meshes]
        )
        ground = ground_mesh()
        ground_vbo = ctx.buffer(ground.positions.astype("f4").tobytes())
        ground_ibo = ctx.buffer(ground.faces.astype("i4").tobytes())
        self._ground_vao = ctx.vertex_array(
            self.ground_lit_program, [(ground_vbo, "3f", "in_position")], index_buffer=ground_ibo, index_element_size=4
        )
        # Where shadows can fall on the ground: four corners, ground-local, rewritten per frame.
        self._receiver_vbo = ctx.buffer(reserve=4 * 3 * 4)
        self._receiver_vao = ctx.vertex_array(
            self.ground_program,
            [(self._receiver_vbo, "3f", "in_position")],
            index_buffer=ground_ibo,
            index_element_size=4,
        )
        self._receiver_ready = False
        distractors = distractor_meshes()
        self._distractors = {name: self._upload(distractors[name]) for name in dict.fromkeys(spec.distractor_shapes)}
        self._background_textures: OrderedDict[Path, tuple[Any, tuple[np.ndarray, np.ndarray]]] = OrderedDict()
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
        shadow_vao = ctx.vertex_array(
            self.shadow_program, [(vbo, "3f 32x", "in_position")], index_buffer=ibo, index_element_size=4
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
            shadow_vao=shadow_vao,
            texture=texture,
            color_mode=color_mode,
            base_color=tuple(float(c) for c in mesh.base_color),  # type: ignore[arg-type]
            center=(low + high).astype(np.float64) / 2,
            longest_side=max(float(np.max(high - low)), 1e-9),
            corners=corners,
            buffers=[vbo, ibo],
        )

    def _background_texture(self, path: Path) -> tuple[Any, tuple[np.ndarray, np.ndarray]] | None:
        """The image's texture and its (top half, bottom half) mean colours, the environment light it gives."""
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
        small = np.asarray(image.resize((16, 16)), dtype=np.float64) / 255.0
        entry = (texture, (small[:8].mean(axis=(0, 1)), small[8:].mean(axis=(0, 1))))
        self._background_textures[path] = entry
        if len(self._background_textures) > BACKGROUND_TEXTURE_CACHE:
            _, (evicted, _colors) = self._background_textures.popitem(last=False)
            evicted.release()
        return entry

    # ---------------------------------------------------------------------------------------------- frame
    def scene_plan(self, frame_index: int) -> ScenePlan:
        """The frame's scene, from the shared sampler (what any backend would render for this frame)."""
        return self.sampler.plan(frame_index)

    def render_frame(self, frame: int | ScenePlan) -> tuple[np.ndarray, list[Box]]:
        """RGB (H, W, 3) uint8 and the kept tight boxes of a plan (or of the frame index's plan).

        The boxes equal render_detailed's. An object's alone coverage is drawn here only when the drop rule
        needs it: alone pixels never exceed the object's screen rect, so one whose visible pixels already make
        min_visible_fraction of that rect is kept whatever its exact fraction (most partly hidden objects).
        """
        plan = self._plan(frame)
        placed = self._draw_frame(plan, self.fbo)
        rgb, ids = self._read_frame(plan)
        rendered = self._label(plan.frame_index, rgb, ids, placed, {}, exact_visibility=False)
        return rendered.rgb, rendered.boxes

    def _plan(self, frame: int | ScenePlan) -> ScenePlan:
        return frame if isinstance(frame, ScenePlan) else self.sampler.plan(frame)

    def render_detailed(self, frame: int | ScenePlan) -> RenderedFrame:
        """Like render_frame, plus the id image and per-object visibility (what the boxes were made from)."""
        plan = self._plan(frame)
        placed = self._draw_frame(plan, self.fbo)
        # Alone coverage of every object that may be hidden is queued behind the frame: the rasterizer runs
        # both in the one flush the readback causes, and the counts arrive with it, with no second readback.
        maybe_hidden = [p for p in placed if p.instance.class_id >= 0 and self._occluders_in_front(p, placed)]
        queries = self._draw_alone_coverage(maybe_hidden)
        rgb, ids = self._read_frame(plan)
        alone = {id(item): int(query.samples) for item, query in zip(maybe_hidden, queries, strict=True)}
        return self._label(plan.frame_index, rgb, ids, placed, alone, exact_visibility=True)

    def render_image(self, frame: int | ScenePlan) -> np.ndarray:
        """Only the RGB image of the frame: no id target, no coverage, no labels (the benchmark's bare render)."""
        plan = self._plan(frame)
        self._draw_frame(plan, self.image_fbo)
        return self._read_rgb(self._effects.apply(self._color, plan.realism) or self.image_fbo)

    def _read_rgb(self, fbo: Any) -> np.ndarray:
        rgb = np.frombuffer(fbo.read(components=3, attachment=0, alignment=1), np.uint8)
        return rgb.reshape(self.height, self.width, 3)

    def _read_frame(self, plan: ScenePlan) -> tuple[np.ndarray, np.ndarray]:
        """The image (through the plan's camera effects) and the sharp id image."""
        rgb = self._read_rgb(self._effects.apply(self._color, plan.realism) or self.fbo)
        ids = np.frombuffer(self.fbo.read(components=1, attachment=1, alignment=1, dtype="u1"), np.uint8)
        return rgb, ids.reshape(self.height, self.width)

    def _draw_frame(self, plan: ScenePlan, fbo: Any) -> list[_Placed]:
        ctx = self.ctx
        camera = plan.camera
        eye = np.asarray(camera.eye, dtype=np.float64)
        view = _look_at(eye, np.asarray(camera.target, dtype=np.float64), math.radians(camera.roll_deg))
        view_projection = _perspective(camera.vertical_fov_deg, self.width / self.height) @ view
        placed = self._place(plan, view_projection, view)
        image = plan.image
        image_jitter = {
            "image_brightness": image.brightness * plan.realism.exposure,
            "image_contrast": image.contrast,
            "image_saturation": image.saturation,
            "image_noise": image.noise,
            "noise_seed": image.noise_seed,
        }
        self._last_view_projection = view_projection
        ctx.enable(ctx.DEPTH_TEST)
        shadow_light = self._draw_shadow_map(plan, placed)
        fbo.use()
        fbo.clear(depth=1.0)  # the colour and id targets need no clear: the background covers what is left
        ctx.depth_func = "<"
        upper, lower = self._background_colors(plan.background)
        environment = (np.ones(3), np.ones(3))
        if plan.realism.environment_light:
            ground_color = lower if plan.ground is None else np.asarray(plan.ground.material.color)
            environment = (_environment_color(upper), _environment_color(ground_color))
        # Front to back where it pays on a CPU rasterizer: objects, then the ground, then the background, each
        # shading only pixels nothing nearer covers (early depth test).
        self._draw_objects(placed, view_projection, eye, plan, image_jitter, environment, shadow_light)
        if plan.ground is not None:
            self._draw_ground(plan, view_projection, image_jitter, environment[0], shadow_light)
        ctx.depth_func = "<="  # the background lies at depth 1.0: only where nothing was drawn
        self._draw_background(plan.background, image_jitter)
        ctx.depth_func = "<"
        return placed

    def _draw_ground(
        self,
        plan: ScenePlan,
        view_projection: np.ndarray,
        image_jitter: dict[str, Any],
        sky: np.ndarray,
        shadow_light: int,
    ) -> None:
        assert plan.ground is not None
        ground = plan.ground
        # The plane's normal is +z: each light's diffuse term is a constant; only the key light's is shadowed.
        unshadowed, key_light = plan.ambient * np.asarray(sky, dtype=np.float64), np.zeros(3)
        for index, (towards, color) in enumerate(zip(*self._light_arrays(plan), strict=False)):
            share = np.asarray(color) * max(float(towards[2]), 0.0)
            if index == shadow_light:
                key_light = share
            else:
                unshadowed = unshadowed + share
        shadowed = shadow_light >= 0 and self._receiver_ready
        passes = [(self.ground_program, self._receiver_vao, 0.0)] if shadowed else []
        # The rest of the plane, a millimetre lower so that the receiver part wins the depth test where both are.
        passes.append((self.ground_lit_program, self._ground_vao, GROUND_UNDERLAY_M if shadowed else 0.0))
        for program, vao, lower in passes:
            model = np.diag([ground.half_size, ground.half_size, 1.0, 1.0])
            model[2, 3] = ground.height - lower
            program["mvp"].write(_gl_matrix(view_projection @ model))
            if "model" in program:  # only the shadow receiver needs world positions
                program["model"].write(_gl_matrix(model))
            program["base_color"].value = ground.material.color
            program["unshadowed"].value = tuple(float(c) for c in unshadowed)
            program["key_light"].value = tuple(float(c) for c in key_light)
            self._set_image_jitter(program, image_jitter)
            # Ground patterns are per metre: the unit quad's local units are half_size metres.
            self._set_material(program, ground.material, 1.0 / ground.half_size)
            vao.render()

    def _light_arrays(self, plan: ScenePlan) -> tuple[np.ndarray, np.ndarray]:
        """(directions towards each light, colours with their temperature), at most MAX_LIGHTS."""
        lights = plan.lights[:MAX_LIGHTS]
        directions = np.zeros((len(lights), 3))
        colors = np.zeros((len(lights), 3))
        for index, light in enumerate(lights):
            directions[index] = direction(light.elevation_deg, light.azimuth_deg)
            colors[index] = light.color
            if light.temperature_k is not None:
                colors[index] *= kelvin_rgb(light.temperature_k)
        return directions, colors

    def _draw_shadow_map(self, plan: ScenePlan, placed: Sequence[_Placed]) -> int:
        """Render the key (strongest) light's depth map over everything placed; returns its index, -1 for none."""
        if not plan.realism.shadows or not plan.lights or not placed:
            return -1
        strengths = [float(np.dot(light.color, (0.299, 0.587, 0.114))) for light in plan.lights[:MAX_LIGHTS]]
        key = int(np.argmax(strengths))
        light = plan.lights[key]
        corners = np.concatenate([item.model @ item.mesh.corners.T for item in placed], axis=1)  # (4, 8n)
        center = (corners[:3].min(axis=1) + corners[:3].max(axis=1)) / 2
        towards = direction(light.elevation_deg, light.azimuth_deg)
        view = _look_at(center + towards * SHADOW_LIGHT_DISTANCE, center, 0.0)
        # Orthographic, fitted to the casters as the light sees them: receivers outside that window cannot be in
        # a shadow (the shader takes them as lit without a lookup), and the texels all go to the casters. Depth
        # reaches SHADOW_DEPTH_REACH past the casters, so the ground behind them is a receiver too.
        seen = view @ corners
        (x0, y0), (x1, y1) = seen[:2].min(axis=1), seen[:2].max(axis=1)
        margin = 0.02 * max(x1 - x0, y1 - y0, 1e-3)
        x0, x1, y0, y1 = x0 - margin, x1 + margin, y0 - margin, y1 + margin
        near, far = max(-float(seen[2].max()) - 0.05, 1e-3), -float(seen[2].min()) + SHADOW_DEPTH_REACH
        ortho = np.eye(4)
        ortho[0, 0], ortho[0, 3] = 2 / (x1 - x0), -(x1 + x0) / (x1 - x0)
        ortho[1, 1], ortho[1, 3] = 2 / (y1 - y0), -(y1 + y0) / (y1 - y0)
        ortho[2, 2], ortho[2, 3] = -2 / (far - near), -(far + near) / (far - near)
        light_view_projection = ortho @ view
        self._receiver_ready = False
        if plan.ground is not None:
            self._receiver_ready = self._set_receiver(view, (x0, y0, x1, y1), plan.ground.height, plan.ground.half_size)
        self._shadow_fbo.use()
        self._shadow_fbo.clear(depth=1.0)
        self.ctx.depth_func = "<"
        for item in placed:
            self.shadow_program["mvp"].write(_gl_matrix(light_view_projection @ item.model))
            item.mesh.shadow_vao.render()
        for program in (self.program, self.ground_program):
            if "shadow_map" not in program:
                continue
            program["light_view_projection"].write(_gl_matrix(light_view_projection))
            program["shadow_texel"].value = max(x1 - x0, y1 - y0) / self._shadow_depth.width
            program["shadow_radius"].value = plan.realism.shadow_softness
            program["shadow_bias"].value = SHADOW_BIAS_M / (far - near)
        return key

    def _set_receiver(
        self, view: np.ndarray, window: tuple[float, float, float, float], height: float, half_size: float
    ) -> bool:
        """Upload the plane's part inside the key light's shadow window (the window's corners carried along the
        light onto the plane); False when the light grazes the plane (then it casts no shadow on it)."""
        to_world = np.linalg.inv(view)
        along = to_world[:3, 2]  # the light's viewing axis in world space
        if abs(float(along[2])) < 1e-6:
            return False
        x0, y0, x1, y1 = window
        corners = []
        for x, y in ((x0, y0), (x1, y0), (x1, y1), (x0, y1)):
            start = to_world @ np.array([x, y, 0.0, 1.0])
            point = start[:3] + along * (height - start[2]) / along[2]
            corners.append((point[0] / half_size, point[1] / half_size, 0.0))
        self._receiver_vbo.write(np.asarray(corners, dtype="f4").tobytes())
        return True

    def _place(self, plan: ScenePlan, view_projection: np.ndarray, view: np.ndarray) -> list[_Placed]:
        placed: list[_Placed] = []
        for number, obj in enumerate(plan.objects):
            gpu = self._gpu_meshes[obj.asset]
            model = model_matrix(obj.size, obj.rotation_deg, obj.position, gpu.center, gpu.longest_side)
            jitter = (obj.brightness, obj.saturation, _hue_rotation(obj.hue_shift_deg))
            instance = ObjectInstance(number + 1, obj.class_id, self.meshes[obj.asset].name)
            placed.append(_Placed(gpu, model, jitter, None, instance, obj.material))
        for number, distractor in enumerate(plan.distractors, start=len(placed) + 1):
            gpu = self._distractors[distractor.shape]
            model = model_matrix(
                distractor.size, distractor.rotation_deg, distractor.position, gpu.center, gpu.longest_side
            )
            instance = ObjectInstance(number, -1, distractor.shape)
            placed.append(_Placed(gpu, model, (1.0, 1.0, np.eye(3)), distractor.color, instance, distractor.material))
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

    def _background_colors(self, background: BackgroundPlan) -> tuple[np.ndarray, np.ndarray]:
        """The background's (upper, lower) colours: what the environment light is made of (the image's halves)."""
        entry = self._background_texture(Path(background.image)) if background.image is not None else None
        if entry is not None:
            return entry[1]
        kind = background.kind if background.kind in PROCEDURAL_BACKGROUNDS else background.fallback_kind
        if kind == "solid":
            return np.asarray(background.color_a), np.asarray(background.color_a)
        return np.asarray(background.color_a), np.asarray(background.color_b)

    def _draw_background(self, background: BackgroundPlan, image_jitter: dict[str, Any]) -> None:
        program = self.background_program
        entry = self._background_texture(Path(background.image)) if background.image is not None else None
        if entry is not None:
            texture, _colors = entry
            texture.use(location=1)
            program["crop"].value = background.crop
            kind = -1
        else:  # a procedural kind, or the fallback when the image cannot be read
            kind = PROCEDURAL_BACKGROUNDS.index(
                background.kind if background.kind in PROCEDURAL_BACKGROUNDS else background.fallback_kind
            )
        program["kind"].value = kind
        program["color_a"].value = background.color_a
        program["color_b"].value = background.color_b
        program["direction"].value = (math.cos(background.angle), math.sin(background.angle))
        program["frequency"].value = background.frequency
        program["offset"].value = background.offset
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
        plan: ScenePlan,
        image_jitter: dict[str, Any],
        environment: tuple[np.ndarray, np.ndarray],
        shadow_light: int,
    ) -> None:
        program = self.program
        self._set_image_jitter(program, image_jitter)
        program["pbr"].value = int(plan.realism.pbr_shading)
        program["sky_color"].value = tuple(float(c) for c in environment[0])
        program["ground_color"].value = tuple(float(c) for c in environment[1])
        if "shadow_light" in program:
            program["shadow_light"].value = shadow_light
        directions = np.zeros((MAX_LIGHTS, 3))
        colors = np.zeros((MAX_LIGHTS, 3))
        towards, tinted = self._light_arrays(plan)
        directions[: len(towards)], colors[: len(tinted)] = towards, tinted
        program["eye"].value = tuple(float(c) for c in eye)
        program["light_count"].value = min(len(plan.lights), MAX_LIGHTS)
        program["light_direction"].write(directions.astype("f4").tobytes())
        program["light_color"].write(colors.astype("f4").tobytes())
        program["ambient"].value = plan.ambient
        program["specular"].value = plan.specular
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
            program["hue_rotation"].write(_gl_matrix(hue))
            if gpu.texture is not None and item.base_color is None:
                gpu.texture.use(location=0)
            material = item.material
            if material is not None and material.color is not None and item.base_color is None:
                program["color_mode"].value = 0
                program["base_color"].value = material.color
            self._set_material(program, material, gpu.longest_side)
            gpu.vao.render()

    @staticmethod
    def _set_material(program: Any, material: MaterialPlan | None, longest_side: float) -> None:
        """Material uniforms; ``longest_side`` in local units makes the pattern frequency per object size."""
        if material is None:
            if "roughness" in program:
                program["roughness"].value = 0.5
                program["metallic"].value = 0.0
            program["pattern"].value = 0
            return
        if "roughness" in program:
            program["roughness"].value = material.roughness
            program["metallic"].value = material.metallic
        program["pattern"].value = PATTERN_CODES.get(material.pattern, 0)
        if material.pattern != "none":
            program["pattern_color"].value = material.pattern_color
            program["pattern_scale"].value = material.pattern_frequency / max(longest_side, 1e-9)
            angle = material.pattern_angle
            program["pattern_axis"].value = (math.cos(angle) * 0.8, math.sin(angle) * 0.8, 0.6)
            program["pattern_seed"].value = material.pattern_seed

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
        fbo.use()  # the camera-effect passes may have bound their own target since the frame was drawn
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
        for texture, _colors in self._background_textures.values():
            texture.release()
        self._background_textures.clear()
        self.ctx.release()

    def __enter__(self) -> GLRenderer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
