# main.py: runs after boot.py. Loads config.json, builds the board, the outbox and the link and
# runs the charger (charger/app.py) forever. Without a usable config the relay stays off
# (boot.py) and the LED blinks the fault pattern: no crash loop. Straight-line code on purpose:
# this file is compiled on the board at each boot, and what runs once needs no function.
import asyncio

import micropython
from charger import app, config, forget

if hasattr(micropython, "alloc_emergency_exception_buf"):  # absent on the unix port
    micropython.alloc_emergency_exception_buf(100)
try:
    cfg = config.load(app.CONFIG_PATH)
except (ValueError, OSError) as e:
    print("[charger] config error:", e)
    cfg = None
del config
forget("charger.config")  # validation runs once: give its code's RAM back
if cfg:
    from charger.board import Board
    from charger.link import Link
    from charger.outbox import Outbox
    board = Board(cfg)
    forget("charger.board")  # only the drivers it built stay
    asyncio.run(app.App(cfg, board, Outbox(), Link).run())
from machine import Pin
from charger.gpio import Led
led = Led(Pin(2))
led.show(4)  # the fault pattern
asyncio.run(led.run())
