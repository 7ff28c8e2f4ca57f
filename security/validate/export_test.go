package validate

// NewDecoder and DynamicDecoder let the tests compare the decoder the
// build uses with dynamicpb's.
var (
	NewDecoder     = newDecoder
	DynamicDecoder = dynamicDecoder
)
