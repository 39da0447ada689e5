// Command kstatus runs the kstatus library (sigs.k8s.io/cli-utils/pkg/kstatus/status),
// the status computation Flux and kpt use, on Kubernetes objects read from stdin.
//
// Input (stdin): one JSON object, a JSON array of objects, or a Kubernetes List
// ({"kind":"...List","items":[...]}).
//
// Output (stdout): a JSON array, one entry per object, in input order:
//
//	[{"kind":"...","name":"...","namespace":"...","status":"Current","message":"..."}]
//
// status is one of InProgress, Failed, Current, Terminating, NotFound, Unknown.
// Bad input (not JSON, an item that is not an object, an object without kind, or an
// object kstatus cannot evaluate) exits with status 1 and a message on stderr.
package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	utiljson "k8s.io/apimachinery/pkg/util/json"
	"sigs.k8s.io/cli-utils/pkg/kstatus/status"
)

type result struct {
	Kind      string `json:"kind"`
	Name      string `json:"name"`
	Namespace string `json:"namespace,omitempty"`
	Status    string `json:"status"`
	Message   string `json:"message"`
}

func main() {
	if len(os.Args) > 1 {
		fmt.Fprintln(os.Stderr, "usage: kstatus < objects.json  (one object, an array of objects, or a List)")
		os.Exit(2)
	}
	in, err := io.ReadAll(os.Stdin)
	if err != nil {
		fail("reading stdin: %v", err)
	}
	objects, err := parse(in)
	if err != nil {
		fail("%v", err)
	}
	results := make([]result, 0, len(objects))
	for i, obj := range objects {
		u := &unstructured.Unstructured{Object: obj}
		res, err := status.Compute(u)
		if err != nil {
			fail("object %d (%s): kstatus: %v", i, describe(u), err)
		}
		results = append(results, result{
			Kind:      u.GetKind(),
			Name:      u.GetName(),
			Namespace: u.GetNamespace(),
			Status:    res.Status.String(),
			Message:   res.Message,
		})
	}
	out := json.NewEncoder(os.Stdout)
	if err := out.Encode(results); err != nil {
		fail("writing stdout: %v", err)
	}
}

// parse turns stdin into a list of objects. Objects are decoded with the
// apimachinery JSON decoder so integers become int64, as unstructured accessors
// (metadata.generation, status.observedGeneration, replicas...) require.
func parse(in []byte) ([]map[string]interface{}, error) {
	in = bytes.TrimSpace(in)
	if len(in) == 0 {
		return nil, errors.New("no input on stdin: expected a JSON object, an array of objects, or a List")
	}
	var raws []json.RawMessage
	switch in[0] {
	case '[':
		if err := json.Unmarshal(in, &raws); err != nil {
			return nil, fmt.Errorf("stdin is not a valid JSON array: %v", err)
		}
	case '{':
		obj, err := decodeObject(in)
		if err != nil {
			return nil, fmt.Errorf("stdin is not a valid JSON object: %v", err)
		}
		kind, _ := obj["kind"].(string)
		items, hasItems := obj["items"]
		if !strings.HasSuffix(kind, "List") || !hasItems {
			if err := checkObject(obj); err != nil {
				return nil, err
			}
			return []map[string]interface{}{obj}, nil
		}
		// A List: re-read items as raw JSON so each goes through the same path.
		var list struct {
			Items []json.RawMessage `json:"items"`
		}
		if items != nil {
			if err := json.Unmarshal(in, &list); err != nil {
				return nil, fmt.Errorf("%s: items is not an array: %v", kind, err)
			}
		}
		raws = list.Items
	default:
		return nil, fmt.Errorf("stdin is not a JSON object or array (starts with %q)", in[0])
	}
	objects := make([]map[string]interface{}, 0, len(raws))
	for i, raw := range raws {
		obj, err := decodeObject(raw)
		if err != nil {
			return nil, fmt.Errorf("item %d: %v", i, err)
		}
		if err := checkObject(obj); err != nil {
			return nil, fmt.Errorf("item %d: %v", i, err)
		}
		objects = append(objects, obj)
	}
	return objects, nil
}

func decodeObject(raw []byte) (map[string]interface{}, error) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || raw[0] != '{' {
		return nil, fmt.Errorf("not a JSON object: %s", truncate(string(raw)))
	}
	var obj map[string]interface{}
	if err := utiljson.Unmarshal(raw, &obj); err != nil {
		return nil, err
	}
	return obj, nil
}

func checkObject(obj map[string]interface{}) error {
	kind, ok := obj["kind"].(string)
	if !ok || kind == "" {
		return errors.New("object has no kind (every object needs apiVersion, kind and metadata)")
	}
	if md, present := obj["metadata"]; present && md != nil {
		if _, ok := md.(map[string]interface{}); !ok {
			return fmt.Errorf("%s: metadata is not an object", kind)
		}
	}
	return nil
}

func describe(u *unstructured.Unstructured) string {
	name := u.GetName()
	if name == "" {
		name = "<unnamed>"
	}
	if ns := u.GetNamespace(); ns != "" {
		name = ns + "/" + name
	}
	return u.GetKind() + " " + name
}

func truncate(s string) string {
	if len(s) > 60 {
		return s[:60] + "..."
	}
	return s
}

func fail(format string, args ...interface{}) {
	fmt.Fprintf(os.Stderr, "kstatus: "+format+"\n", args...)
	os.Exit(1)
}
