package translate

// SetReferenceOnly makes the bindings compiled from now on use the protojson
// path alone (on) or the transcoder where it applies (off).
func SetReferenceOnly(on bool) { referenceOnly = on }
