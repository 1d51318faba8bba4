"""How runs are executed: a forking run launcher and its warm zygote."""
