"""One contract suite per port; every adapter (ours or yours) runs the same one."""
