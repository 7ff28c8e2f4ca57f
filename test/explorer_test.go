package test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/golang-jwt/jwt/v5"
)

// explorerScript drives the explorer page (Swagger UI) as a reader would:
// it waits for the operations, runs "try it" on ListBooks, enters a token
// in the Authorize dialog, then runs GetShelf, which the token's policy
// guards. Every wait is for an element to appear.
const explorerScript = `(async () => {
  const sleep = ms => new Promise(r => setTimeout(r, ms));
  async function waitFor(what, f, scope) {
    // A bound, not a timing assertion: it only turns a hang into an
    // error that names what never appeared (within the test's own bound).
    for (let i = 0; i < 4800; i++) {
      try { const v = f(); if (v) return v; } catch (e) {}
      await sleep(50);
    }
    throw new Error("never appeared: " + what + "; it shows: " + (scope || document.body).innerText.slice(0, 3000));
  }
  function setInput(el, value) {
    Object.getOwnPropertyDescriptor(Object.getPrototypeOf(el), "value").set.call(el, value);
    el.dispatchEvent(new Event("input", { bubbles: true }));
    el.dispatchEvent(new Event("change", { bubbles: true }));
    // Swagger UI debounces its inputs, and passes the value on at once
    // when the field loses focus.
    el.dispatchEvent(new FocusEvent("focusout", { bubbles: true }));
    el.dispatchEvent(new FocusEvent("blur"));
  }
  const opID = b => b.querySelector(".opblock-summary-operation-id")?.textContent.trim();
  async function tryIt(id, params) {
    const block = await waitFor(id, () => [...document.querySelectorAll(".opblock")].find(b => opID(b) === id));
    if (!block.classList.contains("is-open")) (block.querySelector(".opblock-summary-control") || block.querySelector(".opblock-summary")).click();
    await waitFor(id + ": try it out", () => block.querySelector("button.execute") || block.querySelector(".try-out__btn"));
    if (!block.querySelector("button.execute")) block.querySelector(".try-out__btn").click();
    for (const [name, value] of Object.entries(params)) {
      setInput(await waitFor(id + ": " + name, () => block.querySelector('tr[data-param-name="' + name + '"] input')), value);
    }
    (await waitFor(id + ": execute", () => block.querySelector("button.execute"))).click();
    const status = await waitFor(id + ": answer", () => block.querySelector(".live-responses-table .response .response-col_status"), block);
    const body = block.querySelector(".live-responses-table .response-col_description pre")?.textContent ?? "";
    return { status: status.textContent.trim(), body };
  }
  const out = {};
  await waitFor("operations", () => document.querySelectorAll(".opblock").length > 0);
  out.operations = [...document.querySelectorAll(".opblock")].map(opID);
  out.listBooks = await tryIt("LibraryService_ListBooks", { parent_shelves: "1", pageSize: "1" });
  (await waitFor("Authorize button", () => document.querySelector(".auth-wrapper .authorize"))).click();
  const modal = await waitFor("Authorize dialog", () => document.querySelector(".dialog-ux .modal-ux"));
  setInput(await waitFor("token input", () => modal.querySelector("input[type=text], input[type=password]")), TOKEN);
  (await waitFor("Authorize", () => modal.querySelector(".auth-btn-wrapper .authorize"))).click();
  await waitFor("authorized", () => [...modal.querySelectorAll("button")].find(b => b.textContent.trim() === "Logout"), modal);
  (await waitFor("close", () => modal.querySelector(".close-modal, .btn-done"))).click();
  out.getShelf = await tryIt("LibraryService_GetShelf", { name_shelves: "1" });
  return JSON.stringify(out);
})()`

// TestExplorerInBrowser opens the gateway's /docs page in headless Chromium
// and uses it as a reader would (through the DevTools protocol): the page
// loads Swagger UI from the gateway, lists the library's operations, a
// "try it" call succeeds, and one to a method a JWT policy guards succeeds
// once the token is entered in the Authorize dialog.
func TestExplorerInBrowser(t *testing.T) {
	chromium, err := exec.LookPath("chromium")
	if err != nil {
		t.Fatal("chromium is not installed; scripts/test.sh installs it (apt-get install -y chromium)")
	}
	dir := t.TempDir()
	secret := []byte("explorer-secret-explorer-secret-0123")
	key := filepath.Join(dir, "hmac.jwk")
	jwk := fmt.Sprintf(`{"kty":"oct","kid":"k","alg":"HS256","k":%q}`, b64url(secret))
	if err := os.WriteFile(key, []byte(jwk), 0o600); err != nil {
		t.Fatal(err)
	}
	token, err := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{
		"iss": "https://id.test", "aud": "rosetta", "sub": "reader", "exp": time.Now().Add(time.Hour).Unix(),
	}).SignedString(secret)
	if err != nil {
		t.Fatal(err)
	}
	lib := startLibrary(t)
	gw := startRosetta(t, libraryConfig(descriptorSetSchema(), lib, "", fmt.Sprintf(`routes:
  - get: /v1/guarded/{name=shelves/*}
    call: example.library.v1.LibraryService/GetShelf
    policies: [bearer]
policies:
  bearer: {jwt: {issuer: https://id.test, audience: [rosetta], algorithms: [HS256], key_files: [%q]}}
`, key)))
	if r := get(t, gw.base, "/v1/shelves/1"); r.status != 401 {
		t.Fatalf("GET /v1/shelves/1 without a token: %d, want 401", r.status)
	}

	profile := t.TempDir()
	cmd := exec.Command(chromium, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
		"--disable-background-networking", "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage",
		"--remote-debugging-port=0", "--user-data-dir="+profile, gw.base+"/docs")
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	var stderr syncBuffer
	cmd.Stdout, cmd.Stderr = &stderr, &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		cmd.Wait()
	}()
	ctx, cancel := context.WithTimeout(context.Background(), browserTimeout)
	defer cancel()

	// Chromium writes its DevTools port into the profile once it listens.
	var port string
	waitFor(t, "Chromium's DevTools port", func() bool {
		b, err := os.ReadFile(filepath.Join(profile, "DevToolsActivePort"))
		port, _, _ = strings.Cut(string(b), "\n")
		return err == nil && port != ""
	})
	var targets []struct{ Type, URL, WebSocketDebuggerURL string }
	waitFor(t, "the page's DevTools target", func() bool {
		resp, err := http.Get("http://127.0.0.1:" + port + "/json/list")
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		targets = nil
		json.NewDecoder(resp.Body).Decode(&targets)
		return slices.ContainsFunc(targets, func(tg struct{ Type, URL, WebSocketDebuggerURL string }) bool {
			return tg.Type == "page" && strings.HasSuffix(tg.URL, "/docs")
		})
	})
	var wsURL string
	for _, tg := range targets {
		if tg.Type == "page" && strings.HasSuffix(tg.URL, "/docs") {
			wsURL = tg.WebSocketDebuggerURL
		}
	}
	conn, _, err := websocket.Dial(ctx, wsURL, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.CloseNow()
	conn.SetReadLimit(64 << 20)
	id := 0
	// evaluate runs expr in the page and returns its value, waiting for a
	// promise to settle.
	evaluate := func(ctx context.Context, expr string) (any, error) {
		id++
		req, _ := json.Marshal(map[string]any{"id": id, "method": "Runtime.evaluate", "params": map[string]any{
			"expression": expr, "awaitPromise": true, "returnByValue": true,
		}})
		if err := conn.Write(ctx, websocket.MessageText, req); err != nil {
			return nil, err
		}
		for {
			_, b, err := conn.Read(ctx)
			if err != nil {
				return nil, err
			}
			var msg struct {
				ID     int
				Error  *struct{ Message string }
				Result struct {
					Result           struct{ Value any }
					ExceptionDetails *struct {
						Exception struct{ Description string }
					}
				}
			}
			if json.Unmarshal(b, &msg) != nil || msg.ID != id {
				continue // an event
			}
			if msg.Error != nil {
				return nil, fmt.Errorf("%s", msg.Error.Message)
			}
			if e := msg.Result.ExceptionDetails; e != nil {
				return nil, fmt.Errorf("%s", e.Exception.Description)
			}
			return msg.Result.Result.Value, nil
		}
	}
	waitFor(t, "the explorer page to load", func() bool {
		v, err := evaluate(ctx, `location.pathname + " " + document.readyState`)
		return err == nil && v == "/docs complete"
	})
	v, err := evaluate(ctx, strings.Replace(explorerScript, "TOKEN", strconv.Quote(token), 1))
	if err != nil {
		t.Fatalf("the page script failed: %v\nchromium:\n%s\nrosetta:\n%s", err, stderr.String(), gw.stderr)
	}
	result, _ := v.(string)
	var got struct {
		Operations          []string
		ListBooks, GetShelf struct{ Status, Body string }
	}
	if err := json.Unmarshal([]byte(result), &got); err != nil {
		t.Fatalf("page result %q: %v", result, err)
	}
	for _, op := range []string{"LibraryService_ListBooks", "LibraryService_GetShelf", "LibraryService_CreateBook", "LibraryService_StreamBooks"} {
		if !slices.Contains(got.Operations, op) {
			t.Errorf("the page does not list %s: %v", op, got.Operations)
		}
	}
	if !strings.HasPrefix(got.ListBooks.Status, "200") || !strings.Contains(got.ListBooks.Body, `"books"`) {
		t.Errorf("ListBooks from the page: %+v", got.ListBooks)
	}
	if !strings.HasPrefix(got.GetShelf.Status, "200") || !strings.Contains(got.GetShelf.Body, `"fiction"`) {
		t.Errorf("GetShelf with the token entered: %+v", got.GetShelf)
	}
}
