"""The pay-per-use asset agent: meter, tariff, charge, split, revenue ledger (issue 4). A shell
around `channels`; it must never import hub, settlement or watchtower."""
