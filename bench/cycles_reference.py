"""Path-traced reference images for the domain-shift benchmark (Blender Cycles, run by bench/domain_shift.py).

    <bpy venv>/bin/python bench/cycles_reference.py JOB.json

Runs in its own virtualenv with PyPI's ``bpy`` (Blender as a Python module; it pins numpy 1.26, so it never
shares the project's venv) plus ``OpenEXR``: nothing from this repository is imported. JOB.json (written by
domain_shift.py) names the meshes (an .npz each: the project's loader output, metres, Z-up), each class's
real-world appearance, the image count, size, samples and seed, and the output folder.

Each image is a scene of its own, drawn from ``numpy.random.default_rng([seed, image])``: 1-4 labelled objects
resting on a large textured ground plane (wood, tiles, noise or checker; random colours, roughness and scale)
in stable poses (upright or on a side, random yaw; never intersecting), 0-2 unlabelled distractor shapes, a
sun with soft shadows and a colour temperature of 3000-7500 K, sometimes an area light, a uniform world light,
and a perspective camera looking down at the group from 12-70 degrees. Objects use their file's texture or
vertex colours, otherwise the class's real colour (sRGB -> linear, small hue/value variation per instance),
with the class's roughness and metallic (Principled BSDF: GGX specular).

Boxes are the tight boxes of each object's pixels in Cycles' object-index pass (read from a multilayer EXR
of the same render), so occluded parts are excluded like the GL renderer's id target; a box under
``MIN_BOX_SIDE_PX`` or with fewer than ``MIN_PIXELS`` pixels is dropped. Output: the YOLO layout, all images
in ``images/val`` (``data.yaml`` points train and val at it: the set is for evaluation only).
"""

from __future__ import annotations

import colorsys
import json
import math
import sys
import time
from pathlib import Path
from typing import Any

import bpy  # type: ignore[import-not-found]
import numpy as np
import OpenEXR  # type: ignore[import-not-found]
from mathutils import Euler, Matrix, Vector  # type: ignore[import-not-found]

MIN_BOX_SIDE_PX = 4
MIN_PIXELS = 25
INDEX_CHANNEL = "ViewLayer.Object Index.X"
DISTRACTOR_INDEX_BASE = 200
"""Distractors get pass indices from here, so they occlude objects without ever being labelled."""


def srgb_to_linear(rgb: Any) -> np.ndarray:
    c = np.clip(np.asarray(rgb, dtype=np.float64), 0.0, 1.0)
    return np.where(c <= 0.04045, c / 12.92, ((c + 0.055) / 1.055) ** 2.4)


def blackbody_rgb(kelvin: float) -> tuple[float, float, float]:
    """Approximate sRGB of a black body (Tanner Helland's fit), normalized to a max of 1."""
    t = kelvin / 100.0
    r = 255.0 if t <= 66 else 329.698727446 * (t - 60) ** -0.1332047592
    g = 99.4708025861 * math.log(t) - 161.1195681661 if t <= 66 else 288.1221695283 * (t - 60) ** -0.0755148492
    b = 255.0 if t >= 66 else (0.0 if t <= 19 else 138.5177312231 * math.log(t - 10) - 305.0447927307)
    rgb = np.clip(np.array([r, g, b]) / 255.0, 0.0, 1.0)
    lin = srgb_to_linear(rgb)
    return tuple(float(c) for c in lin / lin.max())  # type: ignore[return-value]


# ----------------------------------------------------------------------------------------------- scene setup
def setup_scene(job: dict[str, Any]) -> Any:
    bpy.ops.wm.read_factory_settings(use_empty=True)
    scene = bpy.context.scene
    scene.render.engine = "CYCLES"
    scene.cycles.device = "CPU"
    scene.cycles.samples = int(job["samples"])
    scene.cycles.use_adaptive_sampling = True
    scene.cycles.use_denoising = True
    scene.cycles.max_bounces = 6
    scene.cycles.caustics_reflective = scene.cycles.caustics_refractive = False
    scene.render.threads_mode = "FIXED"
    scene.render.threads = int(job.get("threads", 2))
    scene.render.resolution_x, scene.render.resolution_y = int(job["width"]), int(job["height"])
    scene.render.resolution_percentage = 100
    scene.render.film_transparent = False
    scene.view_settings.view_transform = "AgX"
    scene.render.image_settings.color_management = "FOLLOW_SCENE"
    scene.view_layers[0].use_pass_object_index = True
    return scene


def build_mesh(name: str, arrays: Any) -> Any:
    positions, faces = arrays["positions"], arrays["faces"]
    mesh = bpy.data.meshes.new(name)
    mesh.from_pydata(positions.tolist(), [], faces.tolist())
    mesh.update()
    mesh.materials.append(None)  # one slot, linked per object at render time
    mesh.shade_smooth()
    # The loader already split vertices at creases, so its per-vertex normals are the right custom normals.
    mesh.normals_split_custom_set_from_vertices(arrays["normals"].tolist())
    loop_vertices = np.empty(len(mesh.loops), dtype=np.int64)
    mesh.loops.foreach_get("vertex_index", loop_vertices)
    if "uvs" in arrays:
        layer = mesh.uv_layers.new(name="UVMap")
        layer.data.foreach_set("uv", arrays["uvs"][loop_vertices].astype(np.float32).ravel())
    if "colors" in arrays:
        attribute = mesh.color_attributes.new(name="Col", type="FLOAT_COLOR", domain="POINT")
        rgba = np.concatenate([srgb_to_linear(arrays["colors"]), np.ones((len(positions), 1))], axis=1)
        attribute.data.foreach_set("color", rgba.astype(np.float32).ravel())
    return mesh


def principled(name: str) -> tuple[Any, Any, Any]:
    material = bpy.data.materials.new(name)
    material.use_nodes = True
    nodes = material.node_tree.nodes
    bsdf = nodes.get("Principled BSDF")
    return material, nodes, bsdf


def object_material(name: str, entry: dict[str, Any], rng: np.random.Generator, images: dict[str, Any]) -> Any:
    material, nodes, bsdf = principled(name)
    links = material.node_tree.links
    look = entry["appearance"]
    bsdf.inputs["Roughness"].default_value = float(np.clip(look["roughness"] + rng.uniform(-0.08, 0.08), 0.02, 1))
    bsdf.inputs["Metallic"].default_value = float(look["metallic"])
    texture = entry.get("texture")
    if texture:
        if texture not in images:
            images[texture] = bpy.data.images.load(texture)
        node = nodes.new("ShaderNodeTexImage")
        node.image = images[texture]
        links.new(node.outputs["Color"], bsdf.inputs["Base Color"])
    elif entry.get("vertex_colors"):
        node = nodes.new("ShaderNodeVertexColor")
        node.layer_name = "Col"
        links.new(node.outputs["Color"], bsdf.inputs["Base Color"])
    else:
        h, s, v = colorsys.rgb_to_hsv(*look["color"])
        h = (h + rng.uniform(-entry["hue_jitter"], entry["hue_jitter"])) % 1.0
        v = float(np.clip(v * rng.uniform(0.85, 1.15), 0.0, 1.0))
        linear = srgb_to_linear(colorsys.hsv_to_rgb(h, s, v))
        bsdf.inputs["Base Color"].default_value = (*linear, 1.0)
    return material


def ground_material(rng: np.random.Generator) -> Any:
    material, nodes, bsdf = principled("ground")
    links = material.node_tree.links
    coords = nodes.new("ShaderNodeTexCoord")
    mapping = nodes.new("ShaderNodeMapping")
    mapping.inputs["Scale"].default_value = (float(rng.uniform(1.0, 6.0)),) * 3
    mapping.inputs["Rotation"].default_value = (0.0, 0.0, float(rng.uniform(0, math.tau)))
    links.new(coords.outputs["Object"], mapping.inputs["Vector"])
    hue = rng.uniform()
    a = srgb_to_linear(colorsys.hsv_to_rgb(hue, rng.uniform(0.0, 0.7), rng.uniform(0.15, 0.95)))
    b = srgb_to_linear(
        colorsys.hsv_to_rgb((hue + rng.uniform(-0.1, 0.1)) % 1, rng.uniform(0, 0.7), rng.uniform(0.1, 0.9))
    )
    kind = ("wood", "tiles", "noise", "checker")[int(rng.integers(4))]
    if kind == "wood":
        a = srgb_to_linear(colorsys.hsv_to_rgb(rng.uniform(0.05, 0.1), rng.uniform(0.4, 0.7), rng.uniform(0.3, 0.8)))
        b = a * rng.uniform(0.4, 0.7)
        texture = nodes.new("ShaderNodeTexWave")
        texture.inputs["Scale"].default_value = float(rng.uniform(2, 8))
        texture.inputs["Distortion"].default_value = float(rng.uniform(2, 10))
        factor = texture.outputs["Fac"]
    elif kind == "tiles":
        texture = nodes.new("ShaderNodeTexBrick")
        texture.inputs["Color1"].default_value = (*a, 1.0)
        texture.inputs["Color2"].default_value = (*(a * 0.8), 1.0)
        texture.inputs["Mortar"].default_value = (*b, 1.0)
        factor = texture.outputs["Color"]
    elif kind == "noise":
        texture = nodes.new("ShaderNodeTexNoise")
        texture.inputs["Scale"].default_value = float(rng.uniform(5, 60))
        texture.inputs["Detail"].default_value = float(rng.uniform(2, 10))
        factor = texture.outputs["Fac"]
    else:
        texture = nodes.new("ShaderNodeTexChecker")
        texture.inputs["Color1"].default_value = (*a, 1.0)
        texture.inputs["Color2"].default_value = (*b, 1.0)
        factor = texture.outputs["Color"]
    links.new(mapping.outputs["Vector"], texture.inputs["Vector"])
    if kind in ("wood", "noise"):
        mix = nodes.new("ShaderNodeMix")
        mix.data_type = "RGBA"
        mix.inputs["A"].default_value = (*a, 1.0)
        mix.inputs["B"].default_value = (*b, 1.0)
        links.new(factor, mix.inputs["Factor"])
        links.new(mix.outputs["Result"], bsdf.inputs["Base Color"])
    else:
        links.new(factor, bsdf.inputs["Base Color"])
    bsdf.inputs["Roughness"].default_value = float(rng.uniform(0.25, 0.95))
    return material


def distractor_meshes() -> list[Any]:
    import bmesh  # type: ignore[import-not-found]  # importable only once bpy is

    meshes = []
    for kind in ("cube", "sphere", "cylinder"):
        mesh = bpy.data.meshes.new(f"distractor_{kind}")
        shape = bmesh.new()
        if kind == "cube":
            bmesh.ops.create_cube(shape, size=1.0)
        elif kind == "sphere":
            bmesh.ops.create_uvsphere(shape, u_segments=32, v_segments=16, radius=0.5)
        else:
            bmesh.ops.create_cone(shape, cap_ends=True, segments=32, radius1=0.5, radius2=0.5, depth=1.0)
        shape.to_mesh(mesh)
        shape.free()
        mesh.materials.append(None)
        if kind != "cube":
            mesh.shade_smooth()
        meshes.append(mesh)
    return meshes


# ----------------------------------------------------------------------------------------------- one frame
def rest_rotation(rng: np.random.Generator) -> Matrix:
    """Upright (60%) or on one of its sides, then a random yaw: the stable poses of most everyday objects."""
    choice = rng.uniform()
    if choice < 0.6:
        tilt = Matrix.Identity(3)
    elif choice < 0.8:
        tilt = Euler((math.pi / 2, 0.0, 0.0)).to_matrix()
    else:
        tilt = Euler((0.0, math.pi / 2, 0.0)).to_matrix()
    return Euler((0.0, 0.0, float(rng.uniform(0, math.tau)))).to_matrix() @ tilt


def place(obj: Any, rotation: Matrix, positions: np.ndarray, xy: tuple[float, float]) -> float:
    """Set the object's transform so it rests on z=0 at ``xy``; returns its footprint radius."""
    rotated = positions @ np.array(rotation).T
    low, high = rotated.min(axis=0), rotated.max(axis=0)
    centre = (low + high) / 2
    offset = Vector((xy[0] - centre[0], xy[1] - centre[1], -low[2] + 0.0005))
    obj.matrix_world = Matrix.Translation(offset) @ rotation.to_4x4()
    return float(np.hypot(*(high[:2] - low[:2])) / 2)


def sample_layout(
    rng: np.random.Generator, footprints: list[float], spread: float, tries: int = 60
) -> list[tuple[float, float]] | None:
    """Non-intersecting xy positions (discs of the footprint radii) within a disc of ``spread`` metres."""
    placed: list[tuple[float, float, float]] = []
    for radius in footprints:
        for _ in range(tries):
            r, a = spread * math.sqrt(rng.uniform()), rng.uniform(0, math.tau)
            x, y = r * math.cos(a), r * math.sin(a)
            if all(math.hypot(x - px, y - py) > radius + pr + 0.01 for px, py, pr in placed):
                placed.append((x, y, radius))
                break
        else:
            return None
    return [(x, y) for x, y, _ in placed]


def render_image(
    index: int, job: dict[str, Any], scene: Any, meshes: list[dict[str, Any]], extras: dict[str, Any], out: Path
) -> int:
    rng = np.random.default_rng([int(job["seed"]), index])
    by_class: dict[int, list[dict[str, Any]]] = {}
    for entry in meshes:
        by_class.setdefault(entry["class_id"], []).append(entry)
    classes = sorted(by_class)
    temporary: list[Any] = []

    def add(name: str, data: Any) -> Any:
        obj = bpy.data.objects.new(name, data)
        scene.collection.objects.link(obj)
        temporary.append(obj)
        return obj

    ground = add("ground", extras["plane"])
    ground.data.materials.clear()
    ground_mat = ground_material(rng)
    ground.data.materials.append(ground_mat)
    materials = [ground_mat]

    labelled = []
    for number in range(int(rng.integers(1, 5))):
        members = by_class[classes[int(rng.integers(len(classes)))]]
        entry = members[int(rng.integers(len(members)))]
        labelled.append((number + 1, entry, rest_rotation(rng)))
    distractors = []
    for number in range(int(rng.integers(0, 3))):
        mesh = extras["distractors"][int(rng.integers(len(extras["distractors"])))]
        size = rng.uniform(0.04, 0.15, 3)
        distractors.append((DISTRACTOR_INDEX_BASE + number, mesh, size))

    objects, footprints, rotations, positions_list = [], [], [], []
    for pass_index, entry, rotation in labelled:
        obj = add(f"object_{pass_index}", entry["mesh"])
        obj.pass_index = pass_index
        material = object_material(f"m{pass_index}", entry, rng, extras["images"])
        obj.material_slots[0].link = "OBJECT"  # the mesh is shared: each instance has its own material
        obj.material_slots[0].material = material
        materials.append(material)
        objects.append(obj)
        rotations.append(rotation)
        positions_list.append(entry["positions"])
    for pass_index, mesh, size in distractors:
        obj = add(f"distractor_{pass_index}", mesh)
        obj.pass_index = pass_index
        material, _, bsdf = principled(f"d{pass_index}")
        bsdf.inputs["Base Color"].default_value = (*srgb_to_linear(rng.uniform(0.05, 0.95, 3)), 1.0)
        bsdf.inputs["Roughness"].default_value = float(rng.uniform(0.1, 0.9))
        bsdf.inputs["Metallic"].default_value = float(rng.uniform() < 0.2)
        obj.material_slots[0].link = "OBJECT"
        obj.material_slots[0].material = material
        materials.append(material)
        corners = np.array([[x, y, z] for x in (-0.5, 0.5) for y in (-0.5, 0.5) for z in (-0.5, 0.5)]) * size
        objects.append(obj)
        rotations.append(Euler((0.0, 0.0, float(rng.uniform(0, math.tau)))).to_matrix() @ Matrix.Diagonal(size))
        positions_list.append(corners / size)  # placed with the scale inside the rotation matrix
    for rotation, positions in zip(rotations, positions_list, strict=True):
        rotated = positions @ np.array(rotation).T
        footprints.append(float(np.hypot(*(rotated.max(axis=0)[:2] - rotated.min(axis=0)[:2])) / 2))
    spread = 0.05 + 0.07 * len(objects)
    layout = None
    while layout is None:
        layout = sample_layout(rng, footprints, spread)
        spread *= 1.25
    tops = []
    for obj, rotation, positions, xy in zip(objects, rotations, positions_list, layout, strict=True):
        place(obj, rotation, positions, xy)
        rotated = positions @ np.array(rotation).T
        tops.append(float(rotated.max(axis=0)[2] - rotated.min(axis=0)[2]))

    # Lights: a sun (soft shadows, colour temperature), sometimes an area light, and the world.
    sun = add("sun", extras["sun"])
    sun.data.energy = float(rng.uniform(1.5, 5.0))
    sun.data.angle = math.radians(float(rng.uniform(0.5, 20.0)))
    sun.data.color = blackbody_rgb(float(rng.uniform(3000, 7500)))
    sun.rotation_euler = Euler(
        (math.radians(90 - float(rng.uniform(20, 80))), 0.0, float(rng.uniform(0, math.tau))), "XYZ"
    )
    if rng.uniform() < 0.5:
        area = add("area", extras["area"])
        area.data.energy = float(rng.uniform(40, 250))
        area.data.size = float(rng.uniform(0.3, 1.5))
        area.data.color = blackbody_rgb(float(rng.uniform(2700, 6500)))
        elevation, azimuth, distance = rng.uniform(0.4, 1.3), rng.uniform(0, math.tau), rng.uniform(1.0, 2.5)
        area.location = (
            distance * math.cos(elevation) * math.cos(azimuth),
            distance * math.cos(elevation) * math.sin(azimuth),
            distance * math.sin(elevation),
        )
        direction = Vector((0.0, 0.0, 0.0)) - area.location
        area.rotation_euler = direction.to_track_quat("-Z", "Y").to_euler()
    world = scene.world
    world.node_tree.nodes["Background"].inputs["Color"].default_value = (
        *srgb_to_linear(colorsys.hsv_to_rgb(rng.uniform(0.5, 0.7), rng.uniform(0, 0.4), rng.uniform(0.5, 1.0))),
        1.0,
    )
    world.node_tree.nodes["Background"].inputs["Strength"].default_value = float(rng.uniform(0.2, 1.0))

    # Camera: looks at the group from 12-70 degrees above the ground, far enough to frame it.
    xy = np.array(layout)
    centre = xy.mean(axis=0)
    reach = float(max(np.hypot(*(p - centre)) + r for p, r in zip(xy, footprints, strict=True)))
    reach = max(reach, max(tops) * 0.8, 0.08)
    fov = math.radians(float(rng.uniform(35, 60)))
    camera = scene.camera
    camera.data.angle = fov
    distance = reach / math.tan(fov / 2) * float(rng.uniform(0.9, 1.4))
    elevation, azimuth = math.radians(float(rng.uniform(12, 70))), float(rng.uniform(0, math.tau))
    target = Vector((float(centre[0]), float(centre[1]), float(np.mean(tops)) * 0.4))
    camera.location = target + distance * Vector(
        (math.cos(elevation) * math.cos(azimuth), math.cos(elevation) * math.sin(azimuth), math.sin(elevation))
    )
    roll = math.radians(float(rng.uniform(-5, 5)))
    camera.rotation_euler = (target - camera.location).to_track_quat("-Z", "Y").to_euler()
    camera.rotation_euler.rotate_axis("Z", roll)
    scene.view_settings.exposure = float(rng.uniform(-0.6, 0.6))

    bpy.ops.render.render()
    stem = f"{index:06d}"
    image_path = out / "images" / "val" / f"{stem}.jpg"
    exr_path = out / "work" / f"{stem}.exr"
    result = bpy.data.images["Render Result"]
    settings = scene.render.image_settings
    settings.media_type, settings.file_format, settings.quality = "IMAGE", "JPEG", 92
    result.save_render(str(image_path))
    settings.media_type, settings.file_format = "MULTI_LAYER_IMAGE", "OPEN_EXR_MULTILAYER"
    result.save_render(str(exr_path))
    index_pass = next(
        part.channels[INDEX_CHANNEL].pixels
        for part in OpenEXR.File(str(exr_path)).parts
        if INDEX_CHANNEL in part.channels
    )
    exr_path.unlink()
    ids = np.rint(np.asarray(index_pass)).astype(np.int64)
    height, width = ids.shape
    lines = []
    for pass_index, entry, _ in labelled:
        rows, cols = np.nonzero(ids == pass_index)
        if len(rows) < MIN_PIXELS:
            continue
        x1, x2, y1, y2 = cols.min(), cols.max() + 1, rows.min(), rows.max() + 1
        if min(x2 - x1, y2 - y1) < MIN_BOX_SIDE_PX:
            continue
        cx, cy = (x1 + x2) / 2 / width, (y1 + y2) / 2 / height
        lines.append(f"{entry['class_id']} {cx:.6f} {cy:.6f} {(x2 - x1) / width:.6f} {(y2 - y1) / height:.6f}")
    (out / "labels" / "val" / f"{stem}.txt").write_text("".join(line + "\n" for line in lines))

    for obj in temporary:
        bpy.data.objects.remove(obj)
    for material in materials:
        bpy.data.materials.remove(material)
    return len(lines)


def main(argv: list[str]) -> int:
    job = json.loads(Path(argv[0]).read_text())
    out = Path(job["out"])
    for folder in ("images/val", "labels/val", "work"):
        (out / folder).mkdir(parents=True, exist_ok=True)
    scene = setup_scene(job)
    world = bpy.data.worlds.new("world")
    world.use_nodes = True
    scene.world = world
    camera_data = bpy.data.cameras.new("camera")
    camera_data.sensor_fit = "VERTICAL"
    camera_data.clip_start, camera_data.clip_end = 0.01, 100.0
    camera = bpy.data.objects.new("camera", camera_data)
    scene.collection.objects.link(camera)
    scene.camera = camera
    plane = bpy.data.meshes.new("plane")
    plane.from_pydata([(-6, -6, 0), (6, -6, 0), (6, 6, 0), (-6, 6, 0)], [], [(0, 1, 2, 3)])
    extras = {
        "plane": plane,
        "distractors": distractor_meshes(),
        "sun": bpy.data.lights.new("sun", "SUN"),
        "area": bpy.data.lights.new("area", "AREA"),
        "images": {},
    }
    meshes = []
    for entry in job["meshes"]:
        with np.load(entry["npz"]) as arrays:
            data = {key: arrays[key] for key in arrays.files}
        meshes.append({**entry, "mesh": build_mesh(entry["name"], data), "positions": data["positions"]})
    start, boxes = time.monotonic(), 0
    first, count = int(job.get("first", 0)), int(job["images"])
    for index in range(first, first + count):
        boxes += render_image(index, job, scene, meshes, extras, out)
        done = index - first + 1
        if done % max(1, count // 20) == 0 or done == count:
            rate = done / (time.monotonic() - start)
            print(f"cycles: {done}/{count} images, {boxes} boxes, {rate:.2f} images/s", flush=True)
    (out / "work").rmdir()
    names = "\n".join(f"  {i}: {json.dumps(name)}" for i, name in enumerate(job["class_names"]))
    (out / "data.yaml").write_text(
        "# Domain-shift reference set (bench/cycles_reference.py): evaluation only, so train and val are the\n"
        "# same folder (the dataset checks require both).\n"
        f"train: images/val\nval: images/val\nnc: {len(job['class_names'])}\nnames:\n{names}\n"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
