# main.py: start the charger application (firmware/charger/app.py).
from charger import app

app.main()
