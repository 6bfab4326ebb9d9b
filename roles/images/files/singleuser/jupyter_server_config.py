# Server settings of the default Hubfleet image (sys.prefix's jupyter config directory).
# Idle kernels and terminals are shut down, even with a browser tab still open on them, so
# a forgotten tab does not keep a kernel's memory, or the whole server, alive for ever:
# once nothing runs, the hub's idle culler stops the server. The hub sets the timeout
# (jupyterhub_kernel_cull_timeout) through HUBFLEET_KERNEL_CULL_TIMEOUT; 0 turns it off.
import os

# get_config is provided by Jupyter Server when it loads this file.
c = get_config()  # noqa: F821  # pylint: disable=undefined-variable

timeout = int(os.environ.get("HUBFLEET_KERNEL_CULL_TIMEOUT", "3600"))
if timeout > 0:
    interval = max(1, min(300, timeout // 2))
    c.MappingKernelManager.cull_idle_timeout = timeout
    c.MappingKernelManager.cull_interval = interval
    c.MappingKernelManager.cull_connected = True
    c.MappingKernelManager.cull_busy = False
    c.TerminalManager.cull_inactive_timeout = timeout
    c.TerminalManager.cull_interval = interval
