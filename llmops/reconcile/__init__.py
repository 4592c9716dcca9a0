"""The reconciler: desired (git) vs live (targets, ledger) per stage, as small steps."""
