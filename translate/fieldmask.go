package translate

import (
	"bytes"
	"encoding/json"
	"sort"

	"google.golang.org/protobuf/reflect/protoreflect"
)

// patchMaskField returns the request's update_mask field when a binding
// should derive it from the body (AIP-134, as grpc-gateway does): a PATCH
// whose body is one message field, on a request that has a
// google.protobuf.FieldMask named update_mask.
func patchMaskField(httpMethod string, body protoreflect.FieldDescriptor, input protoreflect.MessageDescriptor) protoreflect.FieldDescriptor {
	if httpMethod != "PATCH" || body == nil || body.Kind() != protoreflect.MessageKind || body.IsList() || body.IsMap() {
		return nil
	}
	fd := input.Fields().ByName("update_mask")
	if fd == nil || fd.IsList() || fd.Kind() != protoreflect.MessageKind || fd.Message().FullName() != "google.protobuf.FieldMask" {
		return nil
	}
	return fd
}

// setMaskFromBody sets the update_mask field of msg, when the client left it
// empty, to the paths present in the JSON body: fields of nested messages
// become dotted paths; maps, lists and well-known types stop the descent.
func setMaskFromBody(msg protoreflect.Message, maskField protoreflect.FieldDescriptor, bodyMsg protoreflect.MessageDescriptor, body []byte) {
	if msg.Has(maskField) {
		m := msg.Get(maskField).Message()
		if m.Get(m.Descriptor().Fields().ByName("paths")).List().Len() > 0 {
			return
		}
	}
	var paths []string
	collectPaths(bytes.TrimSpace(body), bodyMsg, "", &paths)
	sort.Strings(paths)
	mask := msg.NewField(maskField).Message()
	list := mask.Mutable(mask.Descriptor().Fields().ByName("paths")).List()
	for _, p := range paths {
		list.Append(protoreflect.ValueOfString(p))
	}
	msg.Set(maskField, protoreflect.ValueOfMessage(mask))
}

func collectPaths(obj []byte, md protoreflect.MessageDescriptor, prefix string, paths *[]string) {
	var fields map[string]json.RawMessage
	if json.Unmarshal(obj, &fields) != nil {
		return // the body already decoded, so this only happens for null
	}
	for key, raw := range fields {
		fd := lookupField(md, key)
		if fd == nil {
			continue // an unknown field the options let through
		}
		path := prefix + string(fd.Name())
		raw = bytes.TrimSpace(raw)
		if fd.Kind() == protoreflect.MessageKind && !fd.IsList() && !fd.IsMap() &&
			!isWellKnownScalar(fd.Message()) && len(raw) > 0 && raw[0] == '{' && fd.Message().FullName() != "google.protobuf.Struct" {
			collectPaths(raw, fd.Message(), path+".", paths)
			continue
		}
		*paths = append(*paths, path)
	}
}
