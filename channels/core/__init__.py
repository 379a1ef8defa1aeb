"""The pure channel core: frozen state records and `state_transition`, no I/O, time, randomness or keys.

It imports nothing outside `channels.core` except the pure codec (`channels.codec`).
"""
