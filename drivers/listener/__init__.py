"""Listener stage: a speaker (audio, and video when there is one) → listener codes → frames, causally.

Modules, in the order data flows through them:

- :mod:`~drivers.listener.cues` — speaker cues per motion frame (audio features, the speaker's tracked
  face), offline and streaming;
- :mod:`~drivers.listener.style` — listener styles and their captions;
- :mod:`~drivers.listener.model` — the denoiser (cue encoder + transformer);
- :mod:`~drivers.listener.pipeline` — causal chunked sampling (``load_listener``);
- :mod:`~drivers.listener.stream` — :class:`~drivers.listener.stream.ListenerStream`, the real-time API;
- :mod:`~drivers.listener.clip_listener` — listening to a recorded clip with every core busy (what
  ``avatar listen`` runs);
- :mod:`~drivers.listener.live_server` — live listening over WebSocket (``avatar serve``), VMC out;
- :mod:`~drivers.listener.events` — nods and blinks in a code track.

The code layout (59 numbers per frame) is :mod:`avatar.core.code_layout`; frames are drawn by
:class:`avatar.core.code_render.CodeRenderer`. Training, the behavioural
teacher, datasets and metrics are research code in ``scripts/research/listener/``.
"""
