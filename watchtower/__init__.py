"""The watchtower: guards offline parties' channels on chain (issue 6). A shell around `channels`;
it must never import hub, assets or settlement."""
