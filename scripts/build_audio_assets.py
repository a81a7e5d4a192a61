"""Save librosa's mel filterbank of the default audio-feature config into ``assets/audio``.

    python scripts/build_audio_assets.py [--force]

``drivers.audio`` loads it instead of calling ``librosa.filters.mel`` (whose import of ``scipy.signal``
costs about a second at every start); for other configs it calls librosa. ``tests/test_audio.py``
checks the saved copy against librosa.
"""

from __future__ import annotations

import argparse

import numpy as np
from safetensors.numpy import save_file

from drivers.audio import MEL_FILTERBANK_FILE, AudioFeatureConfig, librosa_mel_filterbank, mel_filterbank_key


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--force", action="store_true", help="overwrite an existing file")
    args = parser.parse_args(argv)
    if MEL_FILTERBANK_FILE.exists() and not args.force:
        raise SystemExit(f"{MEL_FILTERBANK_FILE.name} exists; pass --force to rebuild it")
    config = AudioFeatureConfig()
    tensors = {"mel_basis": np.ascontiguousarray(librosa_mel_filterbank(config))}
    tensors.update({name: np.array([value]) for name, value in mel_filterbank_key(config).items()})
    MEL_FILTERBANK_FILE.parent.mkdir(parents=True, exist_ok=True)
    tmp = MEL_FILTERBANK_FILE.with_suffix(".tmp")
    save_file(tensors, str(tmp), metadata={"source": "librosa.filters.mel (Slaney)"})
    tmp.replace(MEL_FILTERBANK_FILE)
    print(f"wrote {MEL_FILTERBANK_FILE.name}: {tensors['mel_basis'].shape}")


if __name__ == "__main__":
    main()
