package iot

import _ "embed"

// Config is examples/iot/rosetta.yaml: the MQTT rules and REST routes of
// the IoT example, as `rosetta demo` serves them.
//
//go:embed rosetta.yaml
var Config []byte
