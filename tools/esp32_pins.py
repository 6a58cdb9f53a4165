"""What the ESP32 (WROOM/WROVER, the classic ESP32) allows on each GPIO, for `make config`.

`check_pins(pins)` takes the firmware's `pins` object (GPIO numbers by role, plus the bus
numbers `spi_id` and `uart_id` and the `relay_active_high` flag) and returns
(errors, warnings): lists of one-line messages. Pure; the firmware's own `charger.config`
checks only the range 0..39 (its code stays small on the board), this module knows the chip:

- GPIO 6-11 are wired to the module's SPI flash: using one crashes the board (error).
- GPIO 34-39 are input-only: no output (relay, LED, SPI clock/MOSI, chip select, reset, UART
  TX) can drive them (error); they have no internal pull-up, so a button there needs an
  external one (warning).
- 20, 24 and 28-31 do not exist on the ESP32 (error).
- One GPIO for two roles (relay and STOP on 32, say) is an error.
- Strapping pins 0, 2, 5, 12, 15 set the boot mode and flash voltage as the chip comes out of
  reset: a load pulling them the wrong way stops the boot (GPIO 12 high: 1.8 V flash), and an
  output on them may toggle at boot (warning; the README wiring's LED on 2 and RC522 chip
  select on 5 are the usual, safe uses and pass silently).
- GPIO 1 and 3 are UART0, the USB serial of flashing and the REPL (warning).
- `spi_id` must be 1 or 2 (the hardware SPI buses), `uart_id` 1 or 2 (UART0 is the REPL).

Sources: Espressif ESP32 datasheet, "Strapping Pins" and "Pin Definitions"; ESP-IDF GPIO
reference (GPIO 6-11 flash, 34-39 input-only without pull resistors).
"""

FLASH = frozenset(range(6, 12))
INPUT_ONLY = frozenset(range(34, 40))
MISSING = frozenset({20, 24, 28, 29, 30, 31})
STRAPPING = frozenset({0, 2, 5, 12, 15})
CONSOLE = frozenset({1, 3})
OUTPUTS = ("relay", "led", "sck", "mosi", "rc522_cs", "rc522_rst", "pzem_tx")
BUTTONS = ("stop", "emergency")  # read with the internal pull-up
INPUTS = ("miso", "pzem_rx")
GPIO_ROLES = OUTPUTS + BUTTONS + INPUTS
README_WIRING = {"led": 2, "rc522_cs": 5}  # strapping pins the documented wiring uses safely


def check_pins(pins: dict) -> tuple[list[str], list[str]]:
    errors, warnings = [], []
    used: dict[int, str] = {}
    for role in GPIO_ROLES:
        gpio = pins.get(role)
        if not isinstance(gpio, int) or isinstance(gpio, bool):
            continue  # the firmware's validate() reports the type
        where = f"pins.{role} = GPIO {gpio}"
        if gpio in FLASH:
            errors.append(f"{where}: GPIO 6-11 are wired to the ESP32's flash chip")
        elif gpio in MISSING:
            errors.append(f"{where}: the ESP32 has no GPIO {gpio}")
        elif gpio in INPUT_ONLY and role in OUTPUTS:
            errors.append(f"{where}: GPIO 34-39 are input-only and cannot drive an output")
        elif gpio in INPUT_ONLY and role in BUTTONS:
            warnings.append(
                f"{where}: GPIO 34-39 have no internal pull-up; fit an external "
                "10 kOhm pull-up to 3.3 V or the button reads noise"
            )
        if gpio in used:
            errors.append(f"{where}: GPIO {gpio} is already pins.{used[gpio]}")
        else:
            used[gpio] = role
        if gpio in STRAPPING and README_WIRING.get(role) != gpio:
            warnings.append(
                f"{where}: GPIO {gpio} is a strapping pin (boot mode"
                f"{', flash voltage' if gpio == 12 else ''}): what it is wired to "
                "must not pull it away from its boot level, and it may toggle "
                "while the board boots"
            )
        if gpio in CONSOLE:
            warnings.append(
                f"{where}: GPIO {gpio} is UART0, the USB serial used to flash and for the REPL"
            )
    for bus in ("spi_id", "uart_id"):
        value = pins.get(bus)
        if value is not None and value not in (1, 2):
            errors.append(
                f"pins.{bus} = {value!r}: must be 1 or 2"
                + (" (UART 0 is the REPL)" if bus == "uart_id" else "")
            )
    return errors, warnings
