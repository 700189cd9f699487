"""The embedded default data: objects drawn with exact masks, composited on real photographs.

No package ships a set of cat photographs, so the default data is generated. Backgrounds and
"random" images are random crops of the real photographs inside scikit-image's wheel (never the
ones it would download). Cats are procedural figures (body, head, ears, eyes, legs, tail) with a
varied pose; non-cats are other shapes (ball, box, triangle, ring). Every image records its
object kind, coat colour and mask, so the evaluation groups are exact by construction.
Rendering is vectorized: a whole batch of images is drawn in a few tensor operations.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as nnf

from .config import DataConfig

# Object kinds; 0 means the image is a plain photograph crop.
KINDS = ("none", "cat", "ball", "box", "triangle", "ring")
CAT = KINDS.index("cat")
SHAPES = tuple(range(2, len(KINDS)))

# Coat / object colours (linear RGB in 0..1). Index 0 is black; cats use 0..5.
COLOURS = {
    "black": (0.06, 0.06, 0.07),
    "brown": (0.45, 0.28, 0.15),  # the hardest negative for "black"
    "ginger": (0.85, 0.47, 0.16),
    "grey": (0.55, 0.56, 0.58),
    "white": (0.92, 0.91, 0.88),
    "cream": (0.90, 0.80, 0.60),
    "red": (0.90, 0.20, 0.20),
    "blue": (0.25, 0.45, 0.95),
    "green": (0.15, 0.65, 0.25),
    "yellow": (0.92, 0.85, 0.15),
}
COLOUR_NAMES = tuple(COLOURS)
BLACK = 0
CAT_COATS = tuple(range(6))
NON_BLACK = tuple(range(1, len(COLOURS)))

# Real photographs bundled in scikit-image's wheel whose docstrings state a free licence:
# astronaut and rocket (public domain), coffee and camera (CC0 by their photographers),
# immunohistochemistry (no known copyright restrictions), brick, grass and gravel (CC0).
# `chelsea` is a cat and is left out; dark photographs (hubble, moon, coins) are left out so
# that a "random" image is not a black one; motorcycle and page state no licence.
COLOUR_PHOTOS = ("astronaut", "coffee", "rocket", "immunohistochemistry")
GREY_PHOTOS = ("brick", "grass", "gravel", "camera")
_LUMA = torch.tensor([0.2126, 0.7152, 0.0722])


def luminance(images: torch.Tensor) -> torch.Tensor:
    """(N, 3, H, W) in 0..1 -> (N, H, W) relative luminance."""
    return torch.einsum("nchw,c->nhw", images, _LUMA.to(images))


@dataclass
class Photos:
    """The background photographs, each as a float (3, H, W) tensor in 0..1."""

    images: list[torch.Tensor]
    grey: list[bool]
    names: list[str]


def load_photos(size: int) -> Photos:
    """Load the bundled photographs, downscaled (antialiased) so crops of them are not aliased."""
    import skimage.data
    from torchvision.transforms.v2.functional import resize

    images, grey, names = [], [], []
    for name in COLOUR_PHOTOS + GREY_PHOTOS:
        array = getattr(skimage.data, name)()
        tensor = torch.from_numpy(np.ascontiguousarray(array)).float() / 255
        tensor = tensor.permute(2, 0, 1) if tensor.ndim == 3 else tensor.expand(3, -1, -1)
        short = min(tensor.shape[1:])
        target = min(short, 4 * size)
        tensor = resize(tensor[None], [target], antialias=True)[0].clamp(0, 1)
        images.append(tensor)
        grey.append(name in GREY_PHOTOS)
        names.append(name)
    return Photos(images, grey, names)


def render_backgrounds(photos: Photos, n: int, size: int, gen: torch.Generator) -> torch.Tensor:
    """`n` random crops (scale, position, mirror, brightness, tint) of the photographs."""
    out = torch.empty(n, 3, size, size)
    which = torch.randint(len(photos.images), (n,), generator=gen)
    scale = torch.empty(n).uniform_(0.25, 0.9, generator=gen)
    shift_x = torch.rand(n, generator=gen) * 2 - 1
    shift_y = torch.rand(n, generator=gen) * 2 - 1
    mirror = torch.where(torch.rand(n, generator=gen) < 0.5, -1.0, 1.0)
    brightness = torch.empty(n, 1, 1, 1).uniform_(0.8, 1.15, generator=gen)
    tint = torch.empty(n, 3, 1, 1).uniform_(0.55, 1.0, generator=gen)
    for index, photo in enumerate(photos.images):
        chosen = (which == index).nonzero().flatten()
        if len(chosen) == 0:
            continue
        h, w = photo.shape[1:]
        aspect = min(h, w)
        theta = torch.zeros(len(chosen), 2, 3)
        theta[:, 0, 0] = scale[chosen] * aspect / w * mirror[chosen]
        theta[:, 1, 1] = scale[chosen] * aspect / h
        theta[:, 0, 2] = shift_x[chosen] * (1 - aspect / w * scale[chosen])
        theta[:, 1, 2] = shift_y[chosen] * (1 - aspect / h * scale[chosen])
        grid = nnf.affine_grid(theta, [len(chosen), 3, size, size], align_corners=False)
        crops = nnf.grid_sample(
            photo[None].expand(len(chosen), -1, -1, -1), grid, align_corners=False
        )
        if photos.grey[index]:
            crops = crops * tint[chosen] + (1 - tint[chosen]) * crops.mean(1, keepdim=True) * 0.5
        out[chosen] = crops
    return (out * brightness).clamp(0, 1)


def _ellipse(u, v, cx, cy, rx, ry):
    return ((u - cx) / rx) ** 2 + ((v - cy) / ry) ** 2 <= 1


def _triangle(u, v, a, b, c):
    def side(p, q):
        return (u - q[0]) * (p[1] - q[1]) - (p[0] - q[0]) * (v - q[1])

    d1, d2, d3 = side(a, b), side(b, c), side(c, a)
    negative = (d1 < 0) | (d2 < 0) | (d3 < 0)
    positive = (d1 > 0) | (d2 > 0) | (d3 > 0)
    return ~(negative & positive)


def _rotate(u, v, angle):
    cos, sin = torch.cos(angle), torch.sin(angle)
    return u * cos - v * sin, u * sin + v * cos


def object_masks(
    kinds: torch.Tensor, size: int, gen: torch.Generator, supersample: int = 2
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Soft masks (N, H, W) of each image's object and of its eyes, and object-pixel coordinates.

    Returns (body alpha, eye alpha, v-coordinate of each pixel in the object's frame) so the
    caller can shade the object from top to bottom. Kind 0 gives an empty mask.
    """
    n, fine = len(kinds), size * supersample
    axis = (torch.arange(fine) + 0.5) / fine * 2 - 1
    y, x = torch.meshgrid(axis, axis, indexing="ij")

    def per_image(low, high):
        return torch.empty(n, 1, 1).uniform_(low, high, generator=gen)

    scale = per_image(0.55, 0.85)
    cx = (torch.rand(n, 1, 1, generator=gen) * 2 - 1) * (1 - scale) * 0.9
    cy = (torch.rand(n, 1, 1, generator=gen) * 2 - 1) * (1 - scale) * 0.9
    angle = per_image(-0.35, 0.35)
    facing = torch.where(torch.rand(n, 1, 1, generator=gen) < 0.5, -1.0, 1.0)
    u, v = _rotate((x - cx) / scale, (y - cy) / scale, angle)
    u = u * facing

    # The cat: body, head, two ears, four legs, a tail whose angle varies, and two eyes.
    stretch = per_image(0.85, 1.15)
    head = per_image(0.21, 0.28)
    leg = per_image(0.3, 0.5)
    tail_angle = per_image(-0.9, 0.4)
    body = _ellipse(u, v, 0.05, 0.15, 0.55 * stretch, 0.28)
    head_x, head_y = -0.55 * stretch, -0.2
    skull = _ellipse(u, v, head_x, head_y, head, head * 0.95)
    ear_l = _triangle(
        u,
        v,
        (head_x - 0.85 * head, head_y - 0.35 * head),
        (head_x - 0.6 * head, head_y - 1.6 * head),
        (head_x - 0.05 * head, head_y - 0.8 * head),
    )
    ear_r = _triangle(
        u,
        v,
        (head_x + 0.05 * head, head_y - 0.8 * head),
        (head_x + 0.6 * head, head_y - 1.6 * head),
        (head_x + 0.85 * head, head_y - 0.35 * head),
    )
    legs = torch.zeros_like(body)
    for left in (-0.42, -0.2, 0.2, 0.4):
        legs |= (u - left * stretch).abs().le(0.055) & (v >= 0.2) & (v <= 0.3 + leg)
    tu, tv = _rotate(u - 0.6 * stretch, v - 0.05, tail_angle)
    tail = _ellipse(tu, tv, 0.12, -0.3, 0.07, 0.36)
    cat = body | skull | ear_l | ear_r | legs | tail
    eye_y = head_y - 0.1 * head
    eyes = _ellipse(u, v, head_x - 0.4 * head, eye_y, 0.2 * head, 0.16 * head) | _ellipse(
        u, v, head_x + 0.35 * head, eye_y, 0.2 * head, 0.16 * head
    )

    radius = (u**2 + v**2).sqrt()
    shapes = {
        KINDS.index("ball"): radius <= 0.62,
        KINDS.index("box"): (u.abs() <= 0.62) & (v.abs() <= 0.45),
        KINDS.index("triangle"): _triangle(u, v, (-0.7, 0.55), (0.0, -0.7), (0.7, 0.55)),
        KINDS.index("ring"): (radius <= 0.65) & (radius >= 0.38),
    }
    k = kinds.view(n, 1, 1)
    body_mask = torch.where(k == CAT, cat, torch.zeros_like(cat))
    for kind, mask in shapes.items():
        body_mask = torch.where(k == kind, mask, body_mask)
    eye_mask = torch.where(k == CAT, eyes & skull, torch.zeros_like(eyes))

    def down(mask):
        return nnf.avg_pool2d(mask.float()[:, None], supersample)[:, 0]

    return down(body_mask), down(eye_mask), down(v.expand(n, -1, -1).contiguous() * 1.0)


def render(
    kinds: torch.Tensor, colours: torch.Tensor, photos: Photos, size: int, gen: torch.Generator
) -> dict[str, torch.Tensor]:
    """Composite one object per image (or none, kind 0) of the given colour on a photo crop.

    Returns uint8 images (N, 3, H, W), uint8 masks (N, H, W; 255 = object) and each object's
    colours index, with its eyes left out of the mask so the colour statistic sees the coat only.
    """
    n = len(kinds)
    background = render_backgrounds(photos, n, size, gen)
    alpha, eyes, v = object_masks(kinds, size, gen)
    palette = torch.tensor(list(COLOURS.values()))
    base = palette[colours].view(n, 3, 1, 1)
    shade = 1.0 + 0.25 * (-v[:, None]) + torch.empty(n, 1, 1, 1).uniform_(-0.1, 0.1, generator=gen)
    stripes = torch.rand(n, 1, 1, 1, generator=gen) < 0.4
    axis = torch.arange(size).float()
    phase = torch.rand(n, 1, 1, 1, generator=gen) * 6.28
    stripe = 1 - 0.18 * stripes * (torch.sin(axis.view(1, 1, 1, -1) * 1.3 + phase) > 0.3)
    noise = torch.randn(n, 3, size, size, generator=gen) * 0.03
    coat = (base * shade * stripe + noise * (0.5 + base)).clamp(0, 1)
    eye_colour = torch.tensor([0.78, 0.82, 0.22]).view(1, 3, 1, 1)
    a, e = alpha[:, None], eyes[:, None]
    image = background * (1 - a) + coat * a
    image = image * (1 - e) + eye_colour * e
    mask = (alpha - eyes).clamp(0, 1)
    return {
        "images": (image * 255).round().to(torch.uint8),
        "masks": (mask * 255).round().to(torch.uint8),
    }


def dark_fraction(images: torch.Tensor, masks: torch.Tensor, threshold: float) -> torch.Tensor:
    """Share of each object's pixels (mask > 1/2) darker than `threshold`; NaN where no object."""
    dark = luminance(images.float() / 255) < threshold
    inside = masks > 127
    count = inside.sum((1, 2)).float()
    share = (dark & inside).sum((1, 2)).float() / count.clamp(min=1)
    return torch.where(count > 0, share, torch.full_like(share, math.nan))


@dataclass
class _Recipe:
    kinds: torch.Tensor
    colours: torch.Tensor
    labels: torch.Tensor
    groups: torch.Tensor


def _pick(options: tuple[int, ...], n: int, gen: torch.Generator) -> torch.Tensor:
    return torch.tensor(options)[torch.randint(len(options), (n,), generator=gen)]


def _random_images(n: int, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """'Random' images: photo crops, half with a non-black, non-cat object on them."""
    kinds = torch.where(torch.rand(n, generator=gen) < 0.5, 0, _pick(SHAPES, n, gen))
    return kinds, _pick(NON_BLACK, n, gen)


def _black_cat_share(data: DataConfig) -> float:
    return 0.2 if data.black_cats_in_training else 0.0


def _group_recipe(m: int, gen: torch.Generator) -> _Recipe:
    """`m` images of each of the four groups; brown is as common as any other coat."""
    o_kinds, o_colours = _random_images(m, gen)
    kinds = torch.cat(
        [
            torch.full((m,), CAT),
            torch.full((m,), CAT),
            _pick(SHAPES, m, gen),
            o_kinds,
        ]
    )
    colours = torch.cat(
        [
            torch.zeros(m, dtype=torch.int64),
            _pick(CAT_COATS[1:], m, gen),
            torch.zeros(m, dtype=torch.int64),
            o_colours,
        ]
    )
    groups = torch.arange(4).repeat_interleave(m)
    return _Recipe(kinds, colours, groups.clone(), groups)


RECIPES = ("black", "cat", "labelled", "evaluated")  # each drawn from its own generator


def recipes(data: DataConfig, gens: dict[str, torch.Generator]) -> dict[str, _Recipe]:
    """What each image shows (object kind, colour, label, group), before drawing: the black and
    cat training sets, and the evaluation set's labelled and evaluated parts (one generator
    each, so changing one count leaves the other parts' images as they were)."""
    out = {}
    # black/random: label 1 = a black object (a black cat only if leakage is switched on).
    gen, n = gens["black"], data.black_count
    kinds = torch.where(
        torch.rand(n, generator=gen) < _black_cat_share(data),
        CAT,
        _pick(SHAPES, n, gen),
    )
    colours = torch.zeros(n, dtype=torch.int64)
    r_kinds, r_colours = _random_images(data.black_random_count, gen)
    out["black"] = _Recipe(
        torch.cat([kinds, r_kinds]),
        torch.cat([colours, r_colours]),
        torch.cat([torch.ones(n), torch.zeros(len(r_kinds))]).long(),
        None,
    )
    # cat/random: label 1 = a cat whose coat is not black (unless leakage is switched on).
    gen, n = gens["cat"], data.cat_count
    colours = torch.where(
        torch.rand(n, generator=gen) < _black_cat_share(data),
        BLACK,
        _pick(CAT_COATS[1:], n, gen),
    )
    r_kinds, r_colours = _random_images(data.cat_random_count, gen)
    out["cat"] = _Recipe(
        torch.cat([torch.full((n,), CAT), r_kinds]),
        torch.cat([colours, r_colours]),
        torch.cat([torch.ones(n), torch.zeros(len(r_kinds))]).long(),
        None,
    )
    for recipe in out.values():
        recipe.groups = ground_truth_groups(recipe.kinds, recipe.colours)
    # evaluation: the labelled part (the probe and the oracle learn from it) and the part every
    # metric is computed on, never mixed.
    out["labelled"] = _group_recipe(data.labelled_per_group, gens["labelled"])
    out["evaluated"] = _group_recipe(data.eval_per_group, gens["evaluated"])
    return out


def ground_truth_groups(kinds: torch.Tensor, colours: torch.Tensor) -> torch.Tensor:
    """The evaluation group of each synthetic image, from what was drawn."""
    is_cat = kinds == CAT
    is_black = (colours == BLACK) & (kinds > 0)
    groups = torch.full_like(kinds, 3)
    groups[is_black & ~is_cat] = 2
    groups[is_cat & ~is_black] = 1
    groups[is_cat & is_black] = 0
    return groups
