"""What moves an avatar over time: media IO, audio features, face tracking, the listener."""
