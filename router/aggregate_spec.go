package router

import (
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"

	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/dynamicpb"

	"github.com/rosettagw/rosetta/translate"
)

// AggregateSpec describes a composed route: the steps it calls and the
// answer it builds from their responses. NewAggregate checks and compiles it.
//
// A source names a value by field path: "input" (the request message the
// ingress decoded), a step's name (its response; a list of responses for a
// fan-out step), or "item" (the current element in a fan-out step),
// optionally followed by dotted field names, as in "product.price_cents".
// A request field may also take "identity.subject" or "claims.NAME", the
// authenticated caller's subject or one of its JWT claims (a string, number
// or boolean, converted to the field's type when the call runs).
type AggregateSpec struct {
	// Input is the message the ingress decodes the request into.
	Input protoreflect.MessageDescriptor
	// Steps are the upstream calls.
	Steps []StepSpec
	// Respond maps keys of the JSON answer to sources. When Respond and
	// Merge are both empty, every step's response appears under its name.
	Respond map[string]string
	// Merge lists message sources whose fields join the answer's top level,
	// under their JSON names.
	Merge []string
	// Timeout bounds the whole call; zero means no bound of its own.
	Timeout time.Duration
	// Resolver resolves google.protobuf.Any in JSON (nil: none).
	Resolver translate.Resolver
}

// StepSpec is one upstream call of a composed route.
type StepSpec struct {
	// Name identifies the step in sources, After and Compensate; it may not
	// be "input", "item", "identity" or "claims".
	Name string
	// Invoker calls the upstream and Target is what it is asked to call:
	// "/package.Service/Method" for gRPC, "METHOD /path" for HTTP, where
	// "{field}" in the path takes a request field.
	Invoker Invoker
	Target  string
	// JSON makes the step a plain HTTP call: the request goes as a proto3
	// JSON body (as query parameters for GET, HEAD and DELETE) and the
	// response is read as proto3 JSON, instead of protobuf wire form.
	JSON bool
	// Request and Response are the message types of the call.
	Request, Response protoreflect.MessageDescriptor
	// Fields maps request field paths to sources. The target "*" takes a
	// whole message of the request's type.
	Fields map[string]string
	// After names steps that must end before this one starts, besides the
	// steps its sources name.
	After []string
	// ForEach, when set, is a repeated source: the step is called once per
	// element ("item" in Fields), and its result is the list of responses in
	// element order.
	ForEach string
	// Concurrency bounds the calls of a fan-out step in flight (default 4);
	// MaxItems bounds its elements (default 100); more fail the step with
	// RESOURCE_EXHAUSTED.
	Concurrency, MaxItems int
	// Timeout bounds the step; zero means only the route's bound applies.
	Timeout time.Duration
	// Optional steps may fail: their key is left out of the answer, which is
	// marked partial. A required step's failure fails the call.
	Optional bool
	// Compensate names a step called, once, if the call fails after this
	// step succeeded (such as releasing a stock reservation when a payment
	// is declined). A step named by Compensate runs only as compensation.
	Compensate string
}

// Default bounds of fan-out steps.
const (
	defaultConcurrency = 4
	defaultMaxItems    = 100
)

// The keys the answer uses to say it is partial; no other key may take them.
const (
	partialKey     = "partial"
	failedStepsKey = "failedSteps"
)

// Root indices of sources other than steps (which use their step index).
const (
	rootInput   = -1
	rootItem    = -2
	rootSubject = -3
	rootClaim   = -4
)

// claimType is the type of a JWT claim, known only when the call runs.
const claimType = "claim"

// source is a compiled value reference.
type source struct {
	text string
	root int
	path []protoreflect.FieldDescriptor
	// claim is the claim's name when root is rootClaim.
	claim string
}

// valueType describes what a source holds, for type checks.
type valueType struct {
	// name is "int64", "repeated string", "message pkg.M", "map<string, int64>".
	name string
	// msg is the message type of a singular message or of the elements of
	// a repeated message.
	msg protoreflect.MessageDescriptor
	// list says the value is a list; elem is its elements' type.
	list bool
	elem *valueType
}

func messageType(md protoreflect.MessageDescriptor) valueType {
	return valueType{name: "message " + string(md.FullName()), msg: md}
}

// fieldType is the type of the value a field holds.
func fieldType(fd protoreflect.FieldDescriptor) valueType {
	switch {
	case fd.IsMap():
		return valueType{name: "map<" + kindName(fd.MapKey()) + ", " + kindName(fd.MapValue()) + ">"}
	case fd.IsList():
		elem := valueType{name: kindName(fd)}
		if fd.Message() != nil {
			elem.msg = fd.Message()
		}
		return valueType{name: "repeated " + elem.name, msg: elem.msg, list: true, elem: &elem}
	}
	t := valueType{name: kindName(fd)}
	if fd.Message() != nil {
		t.msg = fd.Message()
	}
	return t
}

// kindName names the element type of fd, with the integer encodings that
// hold the same values merged (sint64 and sfixed64 are int64).
func kindName(fd protoreflect.FieldDescriptor) string {
	switch fd.Kind() {
	case protoreflect.MessageKind, protoreflect.GroupKind:
		return "message " + string(fd.Message().FullName())
	case protoreflect.EnumKind:
		return "enum " + string(fd.Enum().FullName())
	case protoreflect.Sint32Kind, protoreflect.Sfixed32Kind:
		return "int32"
	case protoreflect.Sint64Kind, protoreflect.Sfixed64Kind:
		return "int64"
	case protoreflect.Fixed32Kind:
		return "uint32"
	case protoreflect.Fixed64Kind:
		return "uint64"
	}
	return fd.Kind().String()
}

// compiler holds the state of one NewAggregate.
type compiler struct {
	spec   *AggregateSpec
	index  map[string]int
	compOf map[string]string // compensation step -> the step it compensates
	errs   []error
}

func (c *compiler) fail(format string, args ...any) {
	c.errs = append(c.errs, fmt.Errorf(format, args...))
}

// NewAggregate checks spec and compiles it into the handler of a composed
// route. The error lists every problem: unknown steps and fields, type
// mismatches between a source and its target, dependency cycles, answer
// key collisions.
func NewAggregate(spec AggregateSpec) (*Aggregate, error) {
	c := &compiler{spec: &spec, index: map[string]int{}, compOf: map[string]string{}}
	if spec.Input == nil {
		return nil, errors.New("aggregate: no input message type")
	}
	if len(spec.Steps) == 0 {
		return nil, errors.New("aggregate: no steps")
	}
	a := &Aggregate{input: dynamicpb.NewMessageType(spec.Input), timeout: spec.Timeout, resolver: spec.Resolver}
	a.steps = make([]*step, len(spec.Steps))
	for i := range spec.Steps {
		s := &spec.Steps[i]
		switch {
		case s.Name == "" || strings.Contains(s.Name, "."):
			c.fail("steps[%d]: name %q: want a non-empty name without dots", i, s.Name)
		case s.Name == "input" || s.Name == "item" || s.Name == "identity" || s.Name == "claims":
			c.fail("step %q: the name is reserved for sources", s.Name)
		default:
			if _, dup := c.index[s.Name]; dup {
				c.fail("step %q: defined twice", s.Name)
			}
		}
		c.index[s.Name] = i
		a.steps[i] = &step{name: s.Name, index: i, inv: s.Invoker, target: s.Target, optional: s.Optional, timeout: s.Timeout}
		if s.Invoker == nil || s.Target == "" {
			c.fail("step %q: no upstream to call", s.Name)
		}
		if s.Request == nil || s.Response == nil {
			c.fail("step %q: request and response message types are required", s.Name)
			continue
		}
		a.steps[i].req = dynamicpb.NewMessageType(s.Request)
		a.steps[i].resp = dynamicpb.NewMessageType(s.Response)
		if s.JSON {
			t, err := compileHTTPTarget(s.Target, s.Request)
			if err != nil {
				c.fail("step %q: %v", s.Name, err)
			}
			a.steps[i].http = t
		}
	}
	for _, s := range spec.Steps {
		if s.Compensate == "" {
			continue
		}
		j, ok := c.index[s.Compensate]
		switch {
		case !ok:
			c.fail("step %q: compensate: unknown step %q", s.Name, s.Compensate)
		case s.Compensate == s.Name:
			c.fail("step %q: compensate: a step cannot compensate itself", s.Name)
		case c.compOf[s.Compensate] != "":
			c.fail("step %q: compensate: step %q already compensates step %q", s.Name, s.Compensate, c.compOf[s.Compensate])
		case spec.Steps[j].Compensate != "":
			c.fail("step %q: compensate: step %q has a compensation of its own", s.Name, s.Compensate)
		default:
			c.compOf[s.Compensate] = s.Name
			a.steps[c.index[s.Name]].compensate = a.steps[j]
		}
	}
	if len(c.errs) > 0 {
		return nil, errors.Join(c.errs...)
	}
	for i := range spec.Steps {
		c.compileStep(a, &spec.Steps[i])
	}
	c.checkDAG(a)
	c.compileAnswer(a)
	if len(c.errs) > 0 {
		return nil, errors.Join(c.errs...)
	}
	for _, s := range a.steps {
		if c.compOf[s.name] == "" {
			a.run = append(a.run, s)
		}
	}
	return a, nil
}

// compileStep resolves a step's sources and targets and checks their types.
func (c *compiler) compileStep(a *Aggregate, spec *StepSpec) {
	s := a.steps[c.index[spec.Name]]
	deps := map[int]bool{}
	var item *valueType
	if spec.ForEach != "" {
		if c.compOf[spec.Name] != "" {
			c.fail("step %q: a compensation step cannot fan out", spec.Name)
			return
		}
		src, t, ok := c.source(spec.Name, "for_each", spec.ForEach, nil)
		if ok && !t.list {
			c.fail("step %q: for_each %q is a %s, not a repeated field", spec.Name, spec.ForEach, t.name)
		} else if ok {
			item = t.elem
			s.forEach = &src
			if src.root >= 0 {
				deps[src.root] = true
			}
		}
		s.concurrency, s.maxItems = spec.Concurrency, spec.MaxItems
		if s.concurrency <= 0 {
			s.concurrency = defaultConcurrency
		}
		if s.maxItems <= 0 {
			s.maxItems = defaultMaxItems
		}
	}
	targets := make([]string, 0, len(spec.Fields))
	for t := range spec.Fields {
		targets = append(targets, t)
	}
	sort.Strings(targets)
	for _, target := range targets {
		text := spec.Fields[target]
		src, t, ok := c.source(spec.Name, fmt.Sprintf("request field %q", target), text, item)
		if !ok {
			continue
		}
		if src.root >= 0 {
			deps[src.root] = true
		}
		var path []protoreflect.FieldDescriptor
		want := messageType(spec.Request)
		if target != "*" {
			var err error
			if path, err = resolvePath(spec.Request, target); err != nil {
				c.fail("step %q: request field %q: %v", spec.Name, target, err)
				continue
			}
			want = fieldType(path[len(path)-1])
		}
		if t.name == claimType {
			if !claimTarget(path) {
				c.fail("step %q: request field %q is %s; a claim can only set a singular string, number or bool field", spec.Name, target, want.name)
			}
		} else if t.name != want.name {
			c.fail("step %q: request field %q is %s but source %q is %s", spec.Name, target, want.name, text, t.name)
			continue
		}
		for _, other := range s.fields {
			if overlapping(other.target, path) {
				c.fail("step %q: request field %q is set twice (overlapping targets)", spec.Name, target)
			}
		}
		s.fields = append(s.fields, assign{target: path, src: src})
	}
	for _, name := range spec.After {
		j, ok := c.index[name]
		if !ok {
			c.fail("step %q: after: unknown step %q", spec.Name, name)
			continue
		}
		deps[j] = true
	}
	for j := range deps {
		s.deps = append(s.deps, j)
	}
	slices.Sort(s.deps)
	for _, j := range s.deps {
		dep := a.steps[j]
		switch {
		case c.compOf[dep.name] != "" && c.compOf[spec.Name] == "":
			c.fail("step %q depends on %q, which runs only as the compensation of %q", spec.Name, dep.name, c.compOf[dep.name])
		case dep.optional && !spec.Optional && c.compOf[spec.Name] == "":
			c.fail("required step %q depends on optional step %q; make it optional too", spec.Name, dep.name)
		}
	}
}

// claimTarget reports whether a claim can set the field path (nil: the
// whole request, which it cannot).
func claimTarget(path []protoreflect.FieldDescriptor) bool {
	if len(path) == 0 {
		return false
	}
	fd := path[len(path)-1]
	if fd.IsList() || fd.IsMap() {
		return false
	}
	switch fd.Kind() {
	case protoreflect.MessageKind, protoreflect.GroupKind, protoreflect.EnumKind, protoreflect.BytesKind:
		return false
	}
	return true
}

// overlapping reports whether setting one target can change the other.
func overlapping(a, b []protoreflect.FieldDescriptor) bool {
	n := min(len(a), len(b))
	return slices.Equal(a[:n], b[:n])
}

// source compiles a source of step (or of the answer when step is "").
func (c *compiler) source(step, what, text string, item *valueType) (source, valueType, bool) {
	where := "answer"
	if step != "" {
		where = fmt.Sprintf("step %q", step)
	}
	root, rest, _ := strings.Cut(text, ".")
	src := source{text: text}
	var t valueType
	switch root {
	case "identity", "claims":
		if step == "" || what == "for_each" {
			c.fail("%s: %s: source %q: the caller's identity can only set request fields", where, what, text)
			return src, t, false
		}
		if root == "identity" {
			if rest != "subject" {
				c.fail("%s: %s: source %q: the identity has only a subject (identity.subject)", where, what, text)
				return src, t, false
			}
			return source{text: text, root: rootSubject}, valueType{name: "string"}, true
		}
		if rest == "" {
			c.fail("%s: %s: source %q: name a claim, as in claims.sub", where, what, text)
			return src, t, false
		}
		return source{text: text, root: rootClaim, claim: rest}, valueType{name: claimType}, true
	case "input":
		src.root, t = rootInput, messageType(c.spec.Input)
	case "item":
		if item == nil {
			c.fail("%s: %s: source %q: item is only defined in a step with for_each", where, what, text)
			return src, t, false
		}
		src.root, t = rootItem, *item
	default:
		j, ok := c.index[root]
		if !ok {
			c.fail("%s: %s: source %q names no step (and is not input or item)", where, what, text)
			return src, t, false
		}
		src.root = j
		dep := &c.spec.Steps[j]
		if comp := c.compOf[root]; comp != "" {
			c.fail("%s: %s: source %q: step %q runs only as the compensation of %q", where, what, text, root, comp)
			return src, t, false
		}
		t = messageType(dep.Response)
		if dep.ForEach != "" {
			elem := t
			t = valueType{name: "repeated " + elem.name, msg: elem.msg, list: true, elem: &elem}
		}
	}
	if rest == "" {
		return src, t, true
	}
	if t.msg == nil || t.list {
		c.fail("%s: %s: source %q: %s is a %s and has no fields", where, what, text, root, t.name)
		return src, t, false
	}
	path, err := resolvePath(t.msg, rest)
	if err != nil {
		c.fail("%s: %s: source %q: %v", where, what, text, err)
		return src, t, false
	}
	src.path = path
	return src, fieldType(path[len(path)-1]), true
}

// resolvePath resolves a dotted field path (proto or JSON names) in md. Every
// field but the last must be a singular message.
func resolvePath(md protoreflect.MessageDescriptor, dotted string) ([]protoreflect.FieldDescriptor, error) {
	var path []protoreflect.FieldDescriptor
	for _, name := range strings.Split(dotted, ".") {
		if md == nil {
			return nil, fmt.Errorf("field %s is not a singular message, so %q cannot go through it", path[len(path)-1].Name(), dotted)
		}
		fd := md.Fields().ByName(protoreflect.Name(name))
		if fd == nil {
			fd = md.Fields().ByJSONName(name)
		}
		if fd == nil {
			return nil, fmt.Errorf("message %s has no field %q", md.FullName(), name)
		}
		path = append(path, fd)
		md = nil
		if fd.Message() != nil && !fd.IsList() && !fd.IsMap() {
			md = fd.Message()
		}
	}
	return path, nil
}

// checkDAG refuses dependency cycles among the steps.
func (c *compiler) checkDAG(a *Aggregate) {
	const (
		unseen = iota
		active
		finished
	)
	state := make([]int, len(a.steps))
	var stack []string
	var visit func(s *step) bool
	visit = func(s *step) bool {
		switch state[s.index] {
		case active:
			i := slices.Index(stack, s.name)
			c.fail("steps form a cycle: %s → %s", strings.Join(stack[i:], " → "), s.name)
			return false
		case finished:
			return true
		}
		state[s.index] = active
		stack = append(stack, s.name)
		for _, d := range s.deps {
			if !visit(a.steps[d]) {
				return false
			}
		}
		stack = stack[:len(stack)-1]
		state[s.index] = finished
		return true
	}
	for _, s := range a.steps {
		if !visit(s) {
			return
		}
	}
	// A compensation step may read only what is known when it runs: the
	// input and the steps that had ended before the step it compensates.
	for _, s := range a.steps {
		if s.compensate == nil {
			continue
		}
		known := ancestors(a, s)
		for _, d := range s.compensate.deps {
			if !known[d] {
				c.fail("step %q compensates %q but depends on %q, which need not have run by then", s.compensate.name, s.name, a.steps[d].name)
			}
		}
	}
}

// ancestors returns s and every step s depends on, directly or not.
func ancestors(a *Aggregate, s *step) map[int]bool {
	seen := map[int]bool{s.index: true}
	todo := []*step{s}
	for len(todo) > 0 {
		x := todo[len(todo)-1]
		todo = todo[:len(todo)-1]
		for _, d := range x.deps {
			if !seen[d] {
				seen[d] = true
				todo = append(todo, a.steps[d])
			}
		}
	}
	return seen
}

// compileAnswer resolves the answer's keys and refuses collisions.
func (c *compiler) compileAnswer(a *Aggregate) {
	owner := map[string]string{partialKey: "the partial-answer marker", failedStepsKey: "the partial-answer marker"}
	claim := func(key, by string) {
		if prev, ok := owner[key]; ok {
			c.fail("answer key %q is produced by %s and by %s", key, prev, by)
			return
		}
		owner[key] = by
	}
	respond, merge := c.spec.Respond, c.spec.Merge
	if len(respond) == 0 && len(merge) == 0 {
		respond = map[string]string{}
		for _, s := range c.spec.Steps {
			if c.compOf[s.Name] == "" {
				respond[s.Name] = s.Name
			}
		}
	}
	keys := make([]string, 0, len(respond))
	for k := range respond {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, key := range keys {
		src, _, ok := c.source("", fmt.Sprintf("respond %q", key), respond[key], nil)
		if !ok {
			continue
		}
		claim(key, fmt.Sprintf("respond %q", key))
		a.answer = append(a.answer, answerPart{key: key, src: src})
	}
	for _, text := range merge {
		src, t, ok := c.source("", "merge", text, nil)
		if !ok {
			continue
		}
		if t.msg == nil || t.list {
			c.fail("answer: merge %q is a %s; only a message's fields can be merged", text, t.name)
			continue
		}
		fields := t.msg.Fields()
		for i := 0; i < fields.Len(); i++ {
			claim(fields.Get(i).JSONName(), fmt.Sprintf("merge %q", text))
		}
		a.answer = append(a.answer, answerPart{src: src, merge: true})
	}
}
