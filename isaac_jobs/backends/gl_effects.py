"""The GL backend's camera effects (defocus, motion blur) as shader passes on the GPU, before the readback.

The frame's colour target is a texture; a frame with defocus or motion blur is filtered from it by full-screen
passes into two ping-pong RGBA8 targets, and the image is read back from the last one. On a GPU host this takes
the effects off the CPU (where they cost more than drawing the frame); the id image is never filtered, so the
boxes stay those of the sharp frame. Frames without either effect are read straight from the colour target.

The passes compute what :mod:`isaac_jobs.camera_effects` computes (the isaac backend's formulas, and the
reference the tests compare with): defocus is PIL's ``BoxBlur`` (a horizontal then a vertical box of the same
fractional radius, edge pixels repeated, each pass rounded to 8 bits) to within one level per pass, and motion
blur is the mean of the taps from :func:`~isaac_jobs.camera_effects.motion_blur_offsets`, summed and divided
in integers, so it equals the numpy version exactly on the same input.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from isaac_jobs.camera_effects import defocus_box_radius, motion_blur_offsets

if TYPE_CHECKING:
    from isaac_jobs.scene import RealismPlan

MAX_MOTION_TAPS = 128
"""Taps the motion-blur pass can take (a blur of up to 127 pixels; the spec allows 100)."""

_FULL_SCREEN_VERTEX_SHADER = """
#version 330
void main() {
    vec2 corner = vec2(float((gl_VertexID << 1) & 2), float(gl_VertexID & 2));
    gl_Position = vec4(corner * 2.0 - 1.0, 0.0, 1.0);
}
"""

# One axis of PIL's box blur: 2 * whole + 1 pixels of weight 1 and the next pixel on each side weighted by the
# radius's fraction, divided by 2 * radius + 1; pixels outside the image repeat the edge pixel.
_BOX_BLUR_SHADER = """
#version 330
uniform sampler2D source;
uniform ivec2 axis;
uniform float radius;
out vec4 out_color;
vec3 at(ivec2 p, ivec2 last) { return texelFetch(source, clamp(p, ivec2(0), last), 0).rgb; }
void main() {
    ivec2 p = ivec2(gl_FragCoord.xy);
    ivec2 last = textureSize(source, 0) - 1;
    int whole = int(floor(radius));
    vec3 sum = vec3(0.0);
    for (int i = -whole; i <= whole; ++i) sum += at(p + axis * i, last);
    sum += (radius - float(whole)) * (at(p + axis * (whole + 1), last) + at(p - axis * (whole + 1), last));
    out_color = vec4(sum / (2.0 * radius + 1.0), 1.0);
}
"""

_MOTION_BLUR_SHADER = f"""
#version 330
uniform sampler2D source;
uniform int taps;
uniform ivec2 offsets[{MAX_MOTION_TAPS}];  // (dx, dy) in image rows-down pixels
out vec4 out_color;
void main() {{
    ivec2 p = ivec2(gl_FragCoord.xy);
    ivec2 last = textureSize(source, 0) - 1;
    ivec3 sum = ivec3(0);
    for (int i = 0; i < taps; ++i) {{
        sum += ivec3(round(texelFetch(source, clamp(p + offsets[i], ivec2(0), last), 0).rgb * 255.0));
    }}
    out_color = vec4(vec3(sum / taps) / 255.0, 1.0);
}}
"""


def has_camera_effects(realism: RealismPlan) -> bool:
    """Whether the plan blurs the frame (the same test as camera_effects.apply_camera_effects)."""
    return realism.defocus_px > 0 or realism.motion_blur_px >= 1


class CameraEffectPasses:
    """Defocus and motion-blur passes over a colour texture of ``size``, in the renderer's GL context."""

    def __init__(self, ctx: Any, size: tuple[int, int]) -> None:
        self.ctx = ctx
        self.box_program = ctx.program(vertex_shader=_FULL_SCREEN_VERTEX_SHADER, fragment_shader=_BOX_BLUR_SHADER)
        self.motion_program = ctx.program(vertex_shader=_FULL_SCREEN_VERTEX_SHADER, fragment_shader=_MOTION_BLUR_SHADER)
        self._box_vao = ctx.vertex_array(self.box_program, [])
        self._motion_vao = ctx.vertex_array(self.motion_program, [])
        self.box_program["source"].value = 3
        self.motion_program["source"].value = 3
        self._targets = [ctx.texture(size, 4) for _ in range(2)]
        self._fbos = [ctx.framebuffer([target]) for target in self._targets]

    def apply(self, source: Any, realism: RealismPlan) -> Any | None:
        """Filter the colour texture ``source`` as ``realism`` says; returns the framebuffer holding the result,
        None when the plan has no blur (then ``source`` is the image)."""
        if not has_camera_effects(realism):
            return None
        ctx = self.ctx
        ctx.disable(ctx.DEPTH_TEST)  # the targets have no depth buffer; every pixel is written
        passes: list[tuple[Any, Any]] = []
        if realism.defocus_px > 0:
            radius = defocus_box_radius(realism.defocus_px)
            for axis in ((1, 0), (0, 1)):
                passes.append((self._box_vao, {"axis": axis, "radius": radius}))
        if realism.motion_blur_px >= 1:
            offsets = motion_blur_offsets(realism.motion_blur_px, realism.motion_blur_angle)[:MAX_MOTION_TAPS]
            packed = np.zeros((MAX_MOTION_TAPS, 2), dtype="i4")
            packed[: len(offsets)] = [(dx, dy) for dy, dx in offsets]
            passes.append((self._motion_vao, {"taps": len(offsets), "offsets": packed}))
        current, target = source, 0
        for vao, uniforms in passes:
            program = vao.program
            for name, value in uniforms.items():
                if isinstance(value, np.ndarray):
                    program[name].write(value.tobytes())
                else:
                    program[name].value = value
            current.use(location=3)
            self._fbos[target].use()
            vao.render(mode=ctx.TRIANGLES, vertices=3)
            current, target = self._targets[target], 1 - target
        ctx.enable(ctx.DEPTH_TEST)  # as the frame's draws expect it
        return self._fbos[1 - target]
