"""Periodic batch settlement on chain and the financing waterfall (issue 5). A shell around
`channels`; it must never import hub, assets or watchtower."""
