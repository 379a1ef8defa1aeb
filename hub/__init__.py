"""The hub: the trio routing service for mediated payments (issue 3). A shell around `channels`;
it must never import assets, settlement or watchtower."""
