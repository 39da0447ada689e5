// Command lua-health runs Argo CD resource health checks written in Lua on Kubernetes objects,
// with the engine Argo CD uses (github.com/yuin/gopher-lua, a Lua 5.1 VM) set up the way
// Argo CD's util/lua package sets it up:
//
//   - only the package, base and table libraries, and a "safe" os library with just os.time
//     and os.date (also what `require("os")` returns); no string, math, io or debug library;
//   - the object is the global `obj` (JSON numbers become Lua numbers, null becomes nil);
//   - the script runs with a 1 s deadline;
//   - the script must return a table (or nil); its status must be one of Argo CD's health
//     codes, otherwise the result is Unknown "Lua returned an invalid health status".
//
// Input (stdin): a JSON array of cases: [{"script": "...lua...", "object": {...}}].
// Output (stdout): a JSON array, one entry per case, in order:
//
//	[{"status": "Healthy", "message": "..."}]   or   [{"error": "..."}]
//
// A script error is reported per case (Argo CD shows it as a health error); malformed input
// exits with status 1 and a message on stderr.
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"time"

	lua "github.com/yuin/gopher-lua"
)

type testCase struct {
	Script string         `json:"script"`
	Object map[string]any `json:"object"`
}

type result struct {
	Status  string `json:"status,omitempty"`
	Message string `json:"message,omitempty"`
	Error   string `json:"error,omitempty"`
}

// Argo CD's health codes (gitops-engine pkg/health).
var validStatuses = map[string]bool{
	"Healthy": true, "Progressing": true, "Degraded": true,
	"Suspended": true, "Missing": true, "Unknown": true,
}

const invalidHealthStatus = "Lua returned an invalid health status"

func main() {
	if len(os.Args) > 1 {
		fmt.Fprintln(os.Stderr, `usage: lua-health < cases.json   ([{"script": "...", "object": {...}}])`)
		os.Exit(2)
	}
	in, err := io.ReadAll(os.Stdin)
	if err != nil {
		fail("reading stdin: %v", err)
	}
	dec := json.NewDecoder(bytes.NewReader(in))
	dec.UseNumber()
	var cases []testCase
	if err := dec.Decode(&cases); err != nil {
		fail("stdin is not a JSON array of {script, object}: %v", err)
	}
	results := make([]result, 0, len(cases))
	for i, c := range cases {
		if c.Object == nil {
			fail("case %d: no object", i)
		}
		results = append(results, run(c.Script, c.Object))
	}
	out, err := json.Marshal(results)
	if err != nil {
		fail("encoding results: %v", err)
	}
	os.Stdout.Write(append(out, '\n'))
}

func run(script string, object map[string]any) result {
	l := lua.NewState(lua.Options{SkipOpenLibs: true})
	defer l.Close()
	for _, lib := range []struct {
		name string
		open lua.LGFunction
	}{
		{lua.LoadLibName, lua.OpenPackage},
		{lua.BaseLibName, lua.OpenBase},
		{lua.TabLibName, lua.OpenTable},
		{lua.OsLibName, openSafeOs},
	} {
		if err := l.CallByParam(lua.P{Fn: l.NewFunction(lib.open), NRet: 0, Protect: true}, lua.LString(lib.name)); err != nil {
			return result{Error: fmt.Sprintf("opening %s: %v", lib.name, err)}
		}
	}
	l.PreloadModule(lua.OsLibName, func(l *lua.LState) int {
		l.Push(safeOsTable(l))
		return 1
	})
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	l.SetContext(ctx)
	l.SetGlobal("obj", decodeValue(l, object))
	if err := l.DoString(script); err != nil {
		return result{Error: err.Error()}
	}
	ret := l.Get(-1)
	switch ret.Type() {
	case lua.LTNil:
		return result{}
	case lua.LTTable:
		tbl := ret.(*lua.LTable)
		status, err := stringField(tbl, "status")
		if err != nil {
			return result{Error: err.Error()}
		}
		message, err := stringField(tbl, "message")
		if err != nil {
			return result{Error: err.Error()}
		}
		if !validStatuses[status] {
			return result{Status: "Unknown", Message: invalidHealthStatus}
		}
		return result{Status: status, Message: message}
	default:
		return result{Error: fmt.Sprintf("expect table output from Lua script, not %s", ret.Type().String())}
	}
}

func stringField(tbl *lua.LTable, key string) (string, error) {
	v := tbl.RawGetString(key)
	switch v.Type() {
	case lua.LTNil:
		return "", nil
	case lua.LTString:
		return v.String(), nil
	default:
		return "", fmt.Errorf("health %s is a %s, not a string", key, v.Type().String())
	}
}

// openSafeOs registers an os table with only time and date, as Argo CD's OpenSafeOs does.
func openSafeOs(l *lua.LState) int {
	tbl := safeOsTable(l)
	l.SetGlobal(lua.OsLibName, tbl)
	l.Push(tbl)
	return 1
}

func safeOsTable(l *lua.LState) *lua.LTable {
	// gopher-lua's os functions are unexported: open the full library in a scratch state
	// and copy the two safe functions (they do not capture their state).
	scratch := lua.NewState(lua.Options{SkipOpenLibs: true})
	defer scratch.Close()
	scratch.Push(scratch.NewFunction(lua.OpenOs))
	scratch.Call(0, 1)
	full := scratch.Get(-1).(*lua.LTable)
	tbl := l.NewTable()
	for _, name := range []string{"time", "date"} {
		fn := full.RawGetString(name).(*lua.LFunction)
		tbl.RawSetString(name, l.NewFunction(fn.GFunction))
	}
	return tbl
}

// decodeValue converts decoded JSON into Lua values the way Argo CD's decodeValue does for an
// unstructured object (integers and floats become numbers; null becomes nil).
func decodeValue(l *lua.LState, value any) lua.LValue {
	switch v := value.(type) {
	case json.Number:
		if i, err := v.Int64(); err == nil {
			return lua.LNumber(i)
		}
		f, err := v.Float64()
		if err != nil {
			return lua.LString(v.String())
		}
		return lua.LNumber(f)
	case float64:
		return lua.LNumber(v)
	case string:
		return lua.LString(v)
	case bool:
		return lua.LBool(v)
	case []any:
		arr := l.CreateTable(len(v), 0)
		for _, item := range v {
			arr.Append(decodeValue(l, item))
		}
		return arr
	case map[string]any:
		tbl := l.CreateTable(0, len(v))
		for key, item := range v {
			tbl.RawSetH(lua.LString(key), decodeValue(l, item))
		}
		return tbl
	default:
		return lua.LNil
	}
}

func fail(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "lua-health: "+format+"\n", args...)
	os.Exit(1)
}
