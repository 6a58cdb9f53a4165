"""Builds the hardware drivers from the config's pin map (`cfg["pins"]`).

The only module that knows GPIO numbers and bus ids; everything else gets driver objects.
"""

from machine import SPI, UART, Pin

from charger.gpio import Button, Led, Relay
from charger.mfrc522 import MFRC522
from charger.pzem import PZEM004T


class Board:
    def __init__(self, cfg):
        p = cfg["pins"]
        # the relay first: it must be OFF before anything else can go wrong
        self.relay = Relay(Pin(p["relay"]), p["relay_active_high"])
        self.stop = Button(Pin(p["stop"]), 0)  # NO button to GND: pressed reads 0
        self.emergency = Button(Pin(p["emergency"]), 1)  # NC button to GND: pressed reads 1
        self.led = Led(Pin(p["led"]))
        spi = SPI(
            p["spi_id"],
            baudrate=1000000,
            polarity=0,
            phase=0,
            sck=Pin(p["sck"]),
            mosi=Pin(p["mosi"]),
            miso=Pin(p["miso"]),
        )
        self.reader = MFRC522(spi, Pin(p["rc522_cs"]), Pin(p["rc522_rst"]))
        uart = UART(
            p["uart_id"],
            baudrate=9600,
            bits=8,
            parity=None,
            stop=1,
            tx=p["pzem_tx"],
            rx=p["pzem_rx"],
            timeout=0,
        )
        self.meter = PZEM004T(uart, cfg["pzem_address"])
