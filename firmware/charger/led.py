"""The status LED lives in charger.gpio (with the relay and the buttons: one module, less RAM).

This name stays for the config-fault path of main.py (`from charger.led import Led`), the only
place that imports it, never in the charging steady state; import charger.gpio instead.
"""

from charger.gpio import Led  # noqa: F401
