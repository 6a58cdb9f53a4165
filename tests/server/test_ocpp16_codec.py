"""The OCPP 1.6 codec holds meter values to the seed protocol's physical bounds."""

from server.codecs import ocpp16


def sampled(measurand, value, unit):
    return {"measurand": measurand, "value": str(value), "unit": unit}


def test_a_negative_or_out_of_range_meter_value_is_not_a_measurement():
    # before: Power.Active.Import -22 kW passed and lowered the session's energy and cost
    [sample] = ocpp16.meter_samples(
        7,
        [
            {
                "timestamp": "2026-12-03T10:00:00Z",
                "sampledValue": [
                    sampled("Power.Active.Import", -22, "kW"),
                    sampled("Voltage", 230, "V"),
                    sampled("Energy.Active.Import.Register", -5, "kWh"),
                ],
            }
        ],
    )
    assert (sample.w, sample.v, sample.wh) == (0.0, 230.0, None)
    assert ocpp16.charger_stop(7, -1, None).wh is None
    assert ocpp16.charger_stop(7, 2800, None).wh == 2800.0
