package router

import (
	"encoding/json"
	"fmt"
	"strconv"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/reflect/protoreflect"
)

// identityValue is the caller's subject or claim named by src, converted to
// the type of field fd. A call without an authenticated caller fails with
// UNAUTHENTICATED; a missing claim, or one that does not fit the field,
// with PERMISSION_DENIED.
func (x *execution) identityValue(src source, fd protoreflect.FieldDescriptor) (protoreflect.Value, error) {
	if x.identity == nil {
		return protoreflect.Value{}, status.Errorf(codes.Unauthenticated, "%s needs an authenticated caller", src.text)
	}
	var claim any = x.identity.Subject
	if src.root == rootClaim {
		var ok bool
		if claim, ok = x.identity.Claims[src.claim]; !ok {
			return protoreflect.Value{}, status.Errorf(codes.PermissionDenied, "the caller's credentials have no claim %q", src.claim)
		}
	}
	var text string
	switch c := claim.(type) {
	case string:
		text = c
	case float64:
		text = strconv.FormatFloat(c, 'f', -1, 64)
	case json.Number:
		text = c.String()
	case bool, int, int64:
		text = fmt.Sprint(c)
	default:
		return protoreflect.Value{}, status.Errorf(codes.PermissionDenied, "claim %q is a %T, not a string, number or boolean", src.claim, claim)
	}
	v, err := scalarFromText(fd, text)
	if err != nil {
		return protoreflect.Value{}, status.Errorf(codes.PermissionDenied, "%s %q does not fit field %s: %v", src.text, text, fd.Name(), err)
	}
	return v, nil
}

// scalarFromText parses text as a value of the string, boolean or numeric
// field fd.
func scalarFromText(fd protoreflect.FieldDescriptor, text string) (protoreflect.Value, error) {
	switch fd.Kind() {
	case protoreflect.StringKind:
		return protoreflect.ValueOfString(text), nil
	case protoreflect.BoolKind:
		b, err := strconv.ParseBool(text)
		return protoreflect.ValueOfBool(b), err
	case protoreflect.Int32Kind, protoreflect.Sint32Kind, protoreflect.Sfixed32Kind:
		n, err := strconv.ParseInt(text, 10, 32)
		return protoreflect.ValueOfInt32(int32(n)), err
	case protoreflect.Int64Kind, protoreflect.Sint64Kind, protoreflect.Sfixed64Kind:
		n, err := strconv.ParseInt(text, 10, 64)
		return protoreflect.ValueOfInt64(n), err
	case protoreflect.Uint32Kind, protoreflect.Fixed32Kind:
		n, err := strconv.ParseUint(text, 10, 32)
		return protoreflect.ValueOfUint32(uint32(n)), err
	case protoreflect.Uint64Kind, protoreflect.Fixed64Kind:
		n, err := strconv.ParseUint(text, 10, 64)
		return protoreflect.ValueOfUint64(n), err
	case protoreflect.FloatKind:
		f, err := strconv.ParseFloat(text, 32)
		return protoreflect.ValueOfFloat32(float32(f)), err
	case protoreflect.DoubleKind:
		f, err := strconv.ParseFloat(text, 64)
		return protoreflect.ValueOfFloat64(f), err
	}
	return protoreflect.Value{}, fmt.Errorf("a %s field cannot take a claim", fd.Kind())
}
