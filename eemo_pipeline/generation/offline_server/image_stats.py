"""``describe`` for the offline model: two or three sentences from an image's statistics (brightness, the
dominant palette colours, contrast, orientation, which half is lighter), never a number."""

from __future__ import annotations

import base64
import binascii
import io
import random
from collections import Counter
from dataclasses import dataclass
from typing import Any

from eemo_pipeline.generation.offline_server.chat_api import BadRequest


def decode_data_url(url: str) -> bytes:
    """The bytes of a base64 data URL (the only way the offline server reads images)."""
    if not url.startswith("data:"):
        raise BadRequest("the offline server reads images only from data URLs (data:image/...;base64,...)", "messages")
    header, _, payload = url.partition(",")
    if ";base64" not in header:
        raise BadRequest("image data URLs must be base64-encoded", "messages")
    try:
        return base64.b64decode(payload, validate=False)
    except (binascii.Error, ValueError) as error:
        raise BadRequest(f"image data URL is not valid base64 ({error})", "messages") from error


def _colour_names(rgb: Any) -> list[str]:
    """Named palette colour of each row of an ``(n, 3)`` array of 0-1 RGB means."""
    import numpy as np

    r, g, b = rgb[:, 0], rgb[:, 1], rgb[:, 2]
    mx, mn = rgb.max(axis=1), rgb.min(axis=1)
    chroma = mx - mn
    sat = np.where(mx > 0, chroma / np.maximum(mx, 1e-9), 0.0)
    safe = np.maximum(chroma, 1e-9)
    hue = np.where(mx == r, ((g - b) / safe) % 6, np.where(mx == g, (b - r) / safe + 2, (r - g) / safe + 4)) * 60
    names = []
    for h, s, v in zip(hue.tolist(), sat.tolist(), mx.tolist()):
        if v < 0.16:
            names.append("black")
        elif s < 0.18 or (s < 0.3 and v < 0.3):
            names.append("white" if v > 0.85 else "grey" if v > 0.3 else "black")
        elif h < 15 or h >= 340:
            names.append("red")
        elif h < 45:
            names.append("orange" if v > 0.65 else "brown")
        elif h < 70:
            names.append("yellow" if v > 0.55 else "olive")
        elif h < 165:
            names.append("green")
        elif h < 195:
            names.append("teal")
        elif h < 255:
            names.append("blue")
        elif h < 290:
            names.append("purple")
        else:
            names.append("pink")
    return names


@dataclass(frozen=True)
class ImageStats:
    brightness: str  # dark / dim / bright
    colours: tuple[str, ...]  # one or two palette names, most pixels first
    contrast: str  # flat / strong
    orientation: str  # landscape / portrait / square
    lighter_half: str | None  # "upper" / "lower" / None when even


def image_stats(data: bytes) -> ImageStats:
    """Brightness, two dominant palette colours (quantized histogram), contrast, orientation of an image."""
    import numpy as np
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(data)) as image:
            width, height = image.size
            image.draft("RGB", (128, 128))
            small = image.convert("RGB")
            small.thumbnail((64, 64))
            pixels = np.asarray(small, dtype=np.float64) / 255.0
    except (UnidentifiedImageError, Image.DecompressionBombError, OSError, ValueError) as error:
        raise BadRequest(f"the image could not be decoded ({type(error).__name__})", "messages") from error
    flat = pixels.reshape(-1, 3)
    luma = flat @ np.array([0.2126, 0.7152, 0.0722])
    lightness = 0.5 * luma + 0.5 * flat.max(axis=1)  # saturated colours read as bright though their luma is low
    mean_light = float(lightness.mean())
    brightness = "dark" if mean_light < 0.3 else "dim" if mean_light < 0.55 else "bright"
    contrast = "strong" if float(luma.std()) > 0.15 else "flat"
    orientation = "landscape" if width > 1.1 * height else "portrait" if height > 1.1 * width else "square"
    # quantized histogram: 8 levels per channel, each occupied bin named by its mean colour
    bins = np.minimum((flat * 8).astype(np.int64), 7)
    index = bins[:, 0] * 64 + bins[:, 1] * 8 + bins[:, 2]
    counts = np.bincount(index, minlength=512)
    occupied = np.nonzero(counts)[0]
    means = np.stack([np.bincount(index, weights=flat[:, c], minlength=512)[occupied] for c in range(3)], axis=1)
    means /= counts[occupied][:, None]
    share: Counter[str] = Counter()
    for name, n in zip(_colour_names(means), counts[occupied].tolist()):
        share[name] += n
    ranked = share.most_common(2)
    colours = tuple(name for name, n in ranked if n >= 0.05 * len(flat)) or (ranked[0][0],)
    rows = lightness.reshape(pixels.shape[:2])
    half = rows.shape[0] // 2
    upper, lower = (float(rows[:half].mean()), float(rows[half:].mean())) if half else (0.0, 0.0)
    lighter = "upper" if upper - lower > 0.1 else "lower" if lower - upper > 0.1 else None
    return ImageStats(brightness, colours, contrast, orientation, lighter)


def describe_image(data: bytes, rng: random.Random) -> str:
    """Two or three sentences from the image's statistics, with no numbers."""
    stats = image_stats(data)
    article = "an" if stats.brightness[0] in "aeiou" else "a"
    shape, light = stats.orientation, stats.brightness
    if len(stats.colours) > 1:
        tones = f"{stats.colours[0]} and {stats.colours[1]} tones"
        first = rng.choice([
            f"{article.capitalize()} {light} {shape} picture dominated by {tones}.",
            f"This {shape} picture is {light} overall, with {tones} taking up most of the frame.",
            f"The {shape} frame looks {light}, and {tones} dominate it.",
        ])
    else:
        tones = f"{stats.colours[0]} tones"
        first = rng.choice([
            f"{article.capitalize()} {light} {shape} picture dominated almost entirely by {tones}.",
            f"This {shape} picture is {light} overall, with {tones} filling almost all of the frame.",
            f"The {shape} frame looks {light}, and {tones} fill almost all of it.",
        ])
    if stats.contrast == "strong":
        second = rng.choice(["The contrast is strong, so shapes and edges stand out clearly.",
                             "Strong contrast separates light and shadow sharply."])
    else:
        second = rng.choice(["The contrast is flat, so the areas blend softly into one another.",
                             "Flat contrast gives the scene a soft, even look."])
    if stats.lighter_half:
        other = "lower" if stats.lighter_half == "upper" else "upper"
        third = f"The {stats.lighter_half} part of the frame is lighter than the {other} part."
    else:
        third = "Light is spread fairly evenly across the frame."
    return " ".join([first, second, third])
