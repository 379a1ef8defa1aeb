"""CISE channels library: the pure channel core plus the codec, signer, wire, store and chain client.

Every other CISE package (hub, assets, settlement, watchtower, cise) stands on this one; it must
never import any of them.
"""
