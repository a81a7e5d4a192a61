"""Build the speaker clip that ``avatar demo`` plays to its avatar: ``assets/listener/demo_speaker.mp3``.

    python scripts/build_listen_demo.py [--out assets/listener/demo_speaker.mp3] [--force] [--json]

Our own sentences spoken by Debian's ``espeak-ng`` (one fixed voice, short and long pauses between
utterances so the listener has places to nod), 16 kHz mono, encoded as a 32 kbit/s MP3 with PyAV
(about 50 KB, 13 s). No third-party media goes into the repository.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]

#: (text, pause after it in seconds): our own words.
SCRIPT = (
    ("So I finally tried the new bakery on the corner.", 0.9),
    ("Honestly, the best bread I have had in years.", 1.3),
    ("But they only open at six, and by eight it is all gone!", 1.2),
)


def build(out: Path, force: bool) -> dict:
    """Synthesize the clip and write it atomically.

    Returns:
        a summary (``seconds``, ``bytes``, ``path``).
    """
    import av

    from avatar.core.io import atomic_output_file
    from research.listener.data_build import SyntheticVoice, synthesize

    voice = SyntheticVoice("en-us", "m3", pitch=45, speed=170, amplitude=120)
    rate = 16000
    pieces = [np.zeros(int(0.4 * rate), np.float32)]
    for text, pause in SCRIPT:
        pieces += [synthesize(text, voice), np.zeros(int(pause * rate), np.float32)]
    signal = np.clip(np.concatenate(pieces) * 0.9, -1.0, 1.0).astype(np.float32)
    with atomic_output_file(out, force=force) as tmp:
        with av.open(str(tmp), "w", format="mp3") as container:
            stream = container.add_stream("libmp3lame", rate=rate, layout="mono")
            stream.bit_rate = 32000
            for start in range(0, signal.size, 1152 * 8):
                frame = av.AudioFrame.from_ndarray(signal[None, start:start + 1152 * 8], format="flt", layout="mono")
                frame.sample_rate = rate
                for packet in stream.encode(frame):
                    container.mux(packet)
            for packet in stream.encode(None):
                container.mux(packet)
    return {"path": str(out.relative_to(ROOT)) if out.is_relative_to(ROOT) else str(out),
            "seconds": round(signal.size / rate, 3), "bytes": out.stat().st_size, "voice": voice.speaker}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=ROOT / "assets" / "listener" / "demo_speaker.mp3")
    parser.add_argument("--force", action="store_true")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    from avatar.core.errors import print_summary

    return print_summary(lambda: build(args.out.resolve(), args.force), args.json)


if __name__ == "__main__":
    sys.exit(main())
