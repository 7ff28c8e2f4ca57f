package gateway

import (
	"context"
	"log/slog"
	"path/filepath"
	"slices"
	"time"

	"github.com/fsnotify/fsnotify"
)

// watch reloads live when asked on reload (SIGHUP), when a file of the
// serving generation changes (unless reload.watch is false; changes are
// debounced), and every reload.reflection_interval when set. The returned
// function stops it.
func watch(ctx context.Context, live *Live, cfg *Config, reload <-chan struct{}, logger *slog.Logger) func() {
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	var w *fsnotify.Watcher
	if live.file != "" && (cfg.Reload.Watch == nil || *cfg.Reload.Watch) {
		var err error
		if w, err = fsnotify.NewWatcher(); err != nil {
			logger.Warn("configuration files are not watched; reload with SIGHUP or POST /admin/reload", "error", err)
			w = nil
		}
	}
	debounce := time.Duration(cfg.Reload.Debounce)
	if debounce <= 0 {
		debounce = 500 * time.Millisecond
	}
	var watched []string // the directories watched
	files := map[string]bool{}
	follow := func(g *Generation) {
		if w == nil {
			return
		}
		clear(files)
		var dirs []string
		for _, f := range g.files {
			files[f] = true
			if d := filepath.Dir(f); !slices.Contains(dirs, d) {
				dirs = append(dirs, d)
			}
		}
		// Directories, not files: editors and secret mounts replace files
		// by renaming, which ends a watch on the file itself.
		for _, d := range dirs {
			if !slices.Contains(watched, d) {
				if err := w.Add(d); err != nil {
					logger.Warn("cannot watch a configuration directory", "dir", d, "error", err)
				}
			}
		}
		for _, d := range watched {
			if !slices.Contains(dirs, d) {
				w.Remove(d)
			}
		}
		watched = dirs
	}
	follow(live.Current())
	swapped := make(chan *Generation, 1)
	live.OnSwap(func(_, g *Generation) {
		select {
		case <-swapped:
		default:
		}
		swapped <- g
	})
	var events <-chan fsnotify.Event
	var errs <-chan error
	if w != nil {
		events, errs = w.Events, w.Errors
	}
	var ticker *time.Ticker
	var tick <-chan time.Time
	if d := time.Duration(cfg.Reload.ReflectionInterval); d > 0 {
		ticker = time.NewTicker(d)
		tick = ticker.C
	}
	go func() {
		defer close(done)
		if ticker != nil {
			defer ticker.Stop()
		}
		if w != nil {
			defer w.Close()
		}
		var settle *time.Timer
		var settled <-chan time.Time
		for {
			select {
			case <-ctx.Done():
				return
			case g := <-swapped:
				follow(g)
			case ev := <-events:
				if !files[filepath.Clean(ev.Name)] || ev.Op == fsnotify.Chmod {
					continue
				}
				if settle == nil {
					settle = time.NewTimer(debounce)
				} else {
					settle.Reset(debounce)
				}
				settled = settle.C
			case err := <-errs:
				logger.Warn("watching the configuration files", "error", err)
			case <-settled:
				settled = nil
				logger.Info("configuration files changed; reloading")
				live.Reload(ctx)
			case <-reload:
				logger.Info("reload requested")
				live.Reload(ctx)
			case <-tick:
				live.Reload(ctx)
			}
		}
	}()
	return func() {
		cancel()
		<-done
	}
}
