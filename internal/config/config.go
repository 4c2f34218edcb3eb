// Package config loads the configuration of `audittrail serve` from one
// place, in a fixed order of precedence: built-in defaults, then an optional
// JSON file (--config), then the environment (AUDITTRAIL_<FLAG>), then the
// command-line flags. Validate runs last. Engines never read flags or the
// environment themselves; the server hands them the fields they need.
package config

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/url"
	"os"
	"sort"
	"strconv"
	"strings"
	"time"
)

// ErrInvalid wraps every configuration error, so the caller can answer
// with a usage message and exit code 2.
var ErrInvalid = errors.New("invalid configuration")

// ErrHelp is returned when the user asked for -h or --help.
var ErrHelp = flag.ErrHelp

// Secret holds a credential (a URL with a password, a key). It never
// prints itself: logs and error messages show REDACTED.
type Secret string

// Reveal returns the secret value, for the one place that must use it.
func (s Secret) Reveal() string { return string(s) }

func (s Secret) String() string {
	if s == "" {
		return ""
	}
	return "REDACTED"
}

// LogValue keeps the secret out of slog output whatever handler is used.
func (s Secret) LogValue() slog.Value { return slog.StringValue(s.String()) }

// MarshalJSON keeps the secret out of any JSON dump of the configuration.
func (s Secret) MarshalJSON() ([]byte, error) { return json.Marshal(s.String()) }

// Store backends.
const (
	StoreEmbedded = "embedded"
	StorePostgres = "postgres"
)

// Config is everything `audittrail serve` can be told.
type Config struct {
	Addr    string
	DataDir string
	// SearchRateLimit is the server default of searches per minute per
	// project; 0 turns the limit off. A company setting overrides it.
	SearchRateLimit int
	Store           string
	PostgresURL     Secret
	RedisURL        Secret
	LogLevel        slog.Level
	LogFormat       string
	TLSCert         string
	TLSKey          string
	// RetentionInterval is how often events past each company's retention
	// are deleted; 0 turns the loop off.
	RetentionInterval time.Duration
	// ShutdownTimeout bounds how long in-flight requests may take to finish
	// after SIGTERM before connections are cut.
	ShutdownTimeout time.Duration
	// GeoIPDB is a MaxMind-format database giving the country of an
	// ingested event's IP; CountryHeader a header a trusted proxy sets to
	// the country. Both optional.
	GeoIPDB       string
	CountryHeader string
	// Ledger keeps the tamper-evident Merkle trees over every project's
	// and company's trail and signs checkpoints of them (docs/tamper-evidence.md).
	Ledger bool
	// CheckpointInterval is how often a signed checkpoint of every tree
	// that grew is made; checkpoints are also made on demand.
	CheckpointInterval time.Duration
	// LedgerKeyFile holds the deployment's Ed25519 signing key; empty means
	// ledger.key in DataDir, created on the first start. Instances sharing
	// one PostgreSQL database must be given the same key.
	LedgerKeyFile string
	// StreamAutoPauseAfter pauses a connector that has failed without a
	// single success for that long (Descope: 7 days), so a destination
	// gone for good stops costing retries; its cursor is kept.
	StreamAutoPauseAfter time.Duration
	// CORSOrigins are the browser origins allowed to call the API from
	// another site; empty (the default) sends no CORS headers, so browsers
	// keep other sites' pages from reading API responses.
	CORSOrigins []string
	// Connection limits: a client that trickles its header or body, or
	// holds an idle connection, is cut off after these.
	ReadHeaderTimeout time.Duration
	ReadTimeout       time.Duration
	WriteTimeout      time.Duration
	IdleTimeout       time.Duration
}

// Defaults are chosen so that `audittrail serve` on a fresh clone works
// with no other service and listens on loopback only.
func Defaults() Config {
	return Config{
		Addr:                 "127.0.0.1:8080",
		DataDir:              "./data",
		SearchRateLimit:      10,
		Store:                StoreEmbedded,
		LogLevel:             slog.LevelInfo,
		LogFormat:            "text",
		RetentionInterval:    time.Hour,
		ShutdownTimeout:      30 * time.Second,
		Ledger:               true,
		CheckpointInterval:   time.Second,
		StreamAutoPauseAfter: 7 * 24 * time.Hour,
		// Generous for a 10 MiB batch over a slow link and a long export,
		// short enough that trickling or idle clients cannot hold
		// connections forever.
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       60 * time.Second,
		WriteTimeout:      5 * time.Minute,
		IdleTimeout:       2 * time.Minute,
	}
}

// LogValue lets the whole configuration be logged at start-up; secrets are
// redacted by their own type.
func (c Config) LogValue() slog.Value {
	return slog.GroupValue(
		slog.String("addr", c.Addr),
		slog.String("data_dir", c.DataDir),
		slog.Int("search_rate_limit", c.SearchRateLimit),
		slog.String("store", c.Store),
		slog.Any("postgres_url", c.PostgresURL),
		slog.Any("redis_url", c.RedisURL),
		slog.String("log_level", c.LogLevel.String()),
		slog.String("log_format", c.LogFormat),
		slog.String("tls_cert", c.TLSCert),
		slog.String("tls_key", c.TLSKey),
		slog.Duration("retention_interval", c.RetentionInterval),
		slog.Duration("shutdown_timeout", c.ShutdownTimeout),
		slog.String("geoip_db", c.GeoIPDB),
		slog.String("country_header", c.CountryHeader),
		slog.Bool("ledger", c.Ledger),
		slog.Duration("checkpoint_interval", c.CheckpointInterval),
		slog.Duration("stream_auto_pause_after", c.StreamAutoPauseAfter),
		slog.String("ledger_key_file", c.LedgerKeyFile),
		slog.Any("cors_origins", c.CORSOrigins),
		slog.Duration("read_header_timeout", c.ReadHeaderTimeout),
		slog.Duration("read_timeout", c.ReadTimeout),
		slog.Duration("write_timeout", c.WriteTimeout),
		slog.Duration("idle_timeout", c.IdleTimeout),
	)
}

// option is one setting, known by the same name as a flag, a config-file
// key and (upper-cased, dashes as underscores, prefixed) an env variable.
type option struct {
	name   string
	usage  string
	secret bool // may also come from <NAME>_FILE
	// boolean flags may be given bare (--ledger) or with =false.
	boolean bool
	set     func(c *Config, v string) error
	get     func(c *Config) string
}

func options() []option {
	str := func(name, usage string, field func(c *Config) *string) option {
		return option{name: name, usage: usage,
			set: func(c *Config, v string) error { *field(c) = v; return nil },
			get: func(c *Config) string { return *field(c) }}
	}
	secret := func(name, usage string, field func(c *Config) *Secret) option {
		return option{name: name, usage: usage, secret: true,
			set: func(c *Config, v string) error { *field(c) = Secret(strings.TrimSpace(v)); return nil },
			get: func(c *Config) string { return field(c).String() }}
	}
	duration := func(name, usage string, field func(c *Config) *time.Duration) option {
		return option{name: name, usage: usage,
			set: func(c *Config, v string) error {
				d, err := time.ParseDuration(v)
				if err != nil {
					return fmt.Errorf("not a duration such as 90s or 1h")
				}
				*field(c) = d
				return nil
			},
			get: func(c *Config) string { return field(c).String() }}
	}
	boolean := func(name, usage string, field func(c *Config) *bool) option {
		return option{name: name, usage: usage, boolean: true,
			set: func(c *Config, v string) error {
				b, err := strconv.ParseBool(strings.TrimSpace(v))
				if err != nil {
					return fmt.Errorf("not a boolean (true or false)")
				}
				*field(c) = b
				return nil
			},
			get: func(c *Config) string { return strconv.FormatBool(*field(c)) }}
	}
	return []option{
		str("addr", "address to listen on (host:port)", func(c *Config) *string { return &c.Addr }),
		str("data-dir", "directory of the embedded store, the tenancy file and bootstrap.json", func(c *Config) *string { return &c.DataDir }),
		{name: "search-rate-limit", usage: "searches per minute per project (0 = no limit); a company setting overrides it",
			set: func(c *Config, v string) error {
				n, err := strconv.Atoi(strings.TrimSuffix(strings.TrimSpace(v), "/min"))
				if err != nil {
					return fmt.Errorf("not a whole number")
				}
				c.SearchRateLimit = n
				return nil
			},
			get: func(c *Config) string { return strconv.Itoa(c.SearchRateLimit) }},
		str("store", "storage backend: embedded or postgres", func(c *Config) *string { return &c.Store }),
		secret("postgres-url", "PostgreSQL URL for --store postgres (or AUDITTRAIL_POSTGRES_URL_FILE)", func(c *Config) *Secret { return &c.PostgresURL }),
		secret("redis-url", "Redis URL for the shared search rate limit (or AUDITTRAIL_REDIS_URL_FILE)", func(c *Config) *Secret { return &c.RedisURL }),
		{name: "log-level", usage: "debug, info, warn or error",
			set: func(c *Config, v string) error {
				return c.LogLevel.UnmarshalText([]byte(v))
			},
			get: func(c *Config) string { return strings.ToLower(c.LogLevel.String()) }},
		str("log-format", "text or json", func(c *Config) *string { return &c.LogFormat }),
		str("tls-cert", "TLS certificate file (PEM); serve HTTPS when set with --tls-key", func(c *Config) *string { return &c.TLSCert }),
		str("tls-key", "TLS private key file (PEM)", func(c *Config) *string { return &c.TLSKey }),
		duration("retention-interval", "how often expired events are deleted (0 = never)", func(c *Config) *time.Duration { return &c.RetentionInterval }),
		duration("shutdown-timeout", "how long in-flight requests may finish after SIGTERM", func(c *Config) *time.Duration { return &c.ShutdownTimeout }),
		str("geoip-db", "MaxMind-format database for the country of an ingested event's IP", func(c *Config) *string { return &c.GeoIPDB }),
		str("country-header", "header a trusted proxy sets to the client's country (e.g. cf-ipcountry)", func(c *Config) *string { return &c.CountryHeader }),
		boolean("ledger", "keep tamper-evident Merkle trees and signed checkpoints of every trail", func(c *Config) *bool { return &c.Ledger }),
		duration("checkpoint-interval", "how often a signed checkpoint of every grown tree is made", func(c *Config) *time.Duration { return &c.CheckpointInterval }),
		duration("stream-auto-pause-after", "pause a stream connector that has failed continuously for this long", func(c *Config) *time.Duration { return &c.StreamAutoPauseAfter }),
		str("ledger-key-file", "Ed25519 checkpoint signing key (default ledger.key in --data-dir, created on first start)", func(c *Config) *string { return &c.LedgerKeyFile }),
		{name: "cors-origins", usage: "comma-separated origins (https://app.example.com) allowed to call the API from a browser; empty = no CORS",
			set: func(c *Config, v string) error {
				c.CORSOrigins = nil
				for _, o := range strings.Split(v, ",") {
					if o = strings.TrimSpace(o); o != "" {
						c.CORSOrigins = append(c.CORSOrigins, o)
					}
				}
				return nil
			},
			get: func(c *Config) string { return strings.Join(c.CORSOrigins, ",") }},
		duration("read-header-timeout", "time a client has to send its request headers", func(c *Config) *time.Duration { return &c.ReadHeaderTimeout }),
		duration("read-timeout", "time a client has to send a whole request, body included", func(c *Config) *time.Duration { return &c.ReadTimeout }),
		duration("write-timeout", "time a response may take, exports included", func(c *Config) *time.Duration { return &c.WriteTimeout }),
		duration("idle-timeout", "how long an idle keep-alive connection stays open", func(c *Config) *time.Duration { return &c.IdleTimeout }),
	}
}

// EnvName is the environment variable that sets the named flag.
func EnvName(flagName string) string {
	return "AUDITTRAIL_" + strings.ToUpper(strings.ReplaceAll(flagName, "-", "_"))
}

// Sources are where Load reads from; tests inject their own.
type Sources struct {
	Args []string
	// Getenv looks up an environment variable; nil means os.LookupEnv.
	Getenv func(string) (string, bool)
	// ReadFile reads the config file and *_FILE secrets; nil means os.ReadFile.
	ReadFile func(string) ([]byte, error)
	// Usage receives the help text on -h; nil discards it.
	Usage io.Writer
}

// Load builds the configuration: defaults → file → environment → flags,
// then Validate.
func Load(src Sources) (Config, error) {
	if src.Getenv == nil {
		src.Getenv = os.LookupEnv
	}
	if src.ReadFile == nil {
		src.ReadFile = os.ReadFile
	}
	opts := options()
	byName := make(map[string]option, len(opts))
	for _, o := range opts {
		byName[o.name] = o
	}

	// Flags are parsed first only to learn which were given; they are
	// applied last so that they win over the file and the environment.
	fs := flag.NewFlagSet("audittrail serve", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	given := map[string]string{}
	var order []string
	record := func(name string) func(string) error {
		return func(v string) error {
			if _, seen := given[name]; !seen {
				order = append(order, name)
			}
			given[name] = v
			return nil
		}
	}
	defaults := Defaults()
	for _, o := range opts {
		usage := o.usage + " (default " + strconv.Quote(o.get(&defaults)) + ")"
		if o.boolean {
			fs.BoolFunc(o.name, usage, record(o.name))
		} else {
			fs.Func(o.name, usage, record(o.name))
		}
		if o.secret {
			fs.Func(o.name+"-file", "file holding --"+o.name, record(o.name+"-file"))
		}
	}
	fs.Func("config", "JSON file of settings keyed by flag name", record("config"))
	if err := fs.Parse(src.Args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			if src.Usage != nil {
				fmt.Fprintln(src.Usage, "Usage: audittrail serve [flags]\n\nEvery flag can also be set as AUDITTRAIL_<FLAG> (e.g. AUDITTRAIL_DATA_DIR) or in the --config file.")
				fs.SetOutput(src.Usage)
				fs.PrintDefaults()
			}
			return Config{}, ErrHelp
		}
		return Config{}, fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	if fs.NArg() > 0 {
		return Config{}, fmt.Errorf("%w: unexpected argument %q", ErrInvalid, fs.Arg(0))
	}

	cfg := Defaults()

	path, ok := given["config"]
	if !ok {
		path, ok = src.Getenv(EnvName("config"))
	}
	if ok && path != "" {
		if err := applyFile(&cfg, byName, path, src.ReadFile); err != nil {
			return Config{}, err
		}
	}

	for _, o := range opts {
		if o.secret {
			if file, ok := src.Getenv(EnvName(o.name) + "_FILE"); ok && file != "" {
				if err := setFromFile(&cfg, o, file, src.ReadFile, EnvName(o.name)+"_FILE"); err != nil {
					return Config{}, err
				}
			}
		}
		if v, ok := src.Getenv(EnvName(o.name)); ok {
			if err := o.set(&cfg, v); err != nil {
				return Config{}, fmt.Errorf("%w: %s: %v", ErrInvalid, EnvName(o.name), err)
			}
		}
	}

	for _, name := range order {
		v := given[name]
		switch {
		case name == "config":
		case strings.HasSuffix(name, "-file") && byName[strings.TrimSuffix(name, "-file")].secret:
			if err := setFromFile(&cfg, byName[strings.TrimSuffix(name, "-file")], v, src.ReadFile, "--"+name); err != nil {
				return Config{}, err
			}
		default:
			if err := byName[name].set(&cfg, v); err != nil {
				return Config{}, fmt.Errorf("%w: --%s: %v", ErrInvalid, name, err)
			}
		}
	}

	if err := cfg.Validate(); err != nil {
		return Config{}, err
	}
	return cfg, nil
}

func setFromFile(cfg *Config, o option, path string, readFile func(string) ([]byte, error), source string) error {
	b, err := readFile(path)
	if err != nil {
		return fmt.Errorf("%w: %s: %v", ErrInvalid, source, err)
	}
	return o.set(cfg, string(bytes.TrimSpace(b)))
}

// applyFile reads a JSON object whose keys are flag names; values may be
// strings, numbers or booleans. An unknown key is an error so that a typo
// does not silently keep the default.
func applyFile(cfg *Config, byName map[string]option, path string, readFile func(string) ([]byte, error)) error {
	b, err := readFile(path)
	if err != nil {
		return fmt.Errorf("%w: config file: %v", ErrInvalid, err)
	}
	var raw map[string]json.RawMessage
	dec := json.NewDecoder(bytes.NewReader(b))
	if err := dec.Decode(&raw); err != nil {
		return fmt.Errorf("%w: config file %s: %v", ErrInvalid, path, err)
	}
	if dec.More() {
		return fmt.Errorf("%w: config file %s: trailing data after the JSON object", ErrInvalid, path)
	}
	keys := make([]string, 0, len(raw))
	for k := range raw {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		v := raw[k]
		name, fromFile := k, false
		o, ok := byName[name]
		if !ok && strings.HasSuffix(k, "-file") {
			o, ok = byName[strings.TrimSuffix(k, "-file")]
			ok = ok && o.secret
			fromFile = true
		}
		if !ok {
			return fmt.Errorf("%w: config file %s: unknown setting %q", ErrInvalid, path, k)
		}
		var s string
		if len(v) > 0 && v[0] == '"' {
			if err := json.Unmarshal(v, &s); err != nil {
				return fmt.Errorf("%w: config file %s: %s: %v", ErrInvalid, path, k, err)
			}
		} else {
			s = string(bytes.TrimSpace(v))
		}
		if fromFile {
			if err := setFromFile(cfg, o, s, readFile, "config file "+k); err != nil {
				return err
			}
			continue
		}
		if err := o.set(cfg, s); err != nil {
			return fmt.Errorf("%w: config file %s: %s: %v", ErrInvalid, path, k, err)
		}
	}
	return nil
}

// Validate checks the settings together.
func (c Config) Validate() error {
	var errs []error
	bad := func(format string, a ...any) { errs = append(errs, fmt.Errorf(format, a...)) }
	if _, _, err := net.SplitHostPort(c.Addr); err != nil {
		bad("addr %q: %v", c.Addr, err)
	}
	if c.DataDir == "" {
		bad("data-dir is required")
	}
	if c.SearchRateLimit < 0 {
		bad("search-rate-limit must be 0 (off) or positive, not %d", c.SearchRateLimit)
	}
	switch c.Store {
	case StoreEmbedded:
	case StorePostgres:
		if c.PostgresURL == "" {
			bad("store postgres needs --postgres-url (or AUDITTRAIL_POSTGRES_URL)")
		}
	default:
		bad("store must be %q or %q, not %q", StoreEmbedded, StorePostgres, c.Store)
	}
	switch c.LogFormat {
	case "text", "json":
	default:
		bad("log-format must be text or json, not %q", c.LogFormat)
	}
	if (c.TLSCert == "") != (c.TLSKey == "") {
		bad("tls-cert and tls-key must be given together")
	}
	if c.RetentionInterval < 0 {
		bad("retention-interval must not be negative")
	}
	if c.ShutdownTimeout <= 0 {
		bad("shutdown-timeout must be positive")
	}
	for _, o := range c.CORSOrigins {
		// No "*": every origin allowed would let any site's scripts use a key
		// they get hold of; origins are listed one by one.
		if u, err := url.Parse(o); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.Path != "" || u.RawQuery != "" || u.User != nil {
			bad("cors-origins: %q is not an origin such as https://app.example.com", o)
		}
	}
	for _, t := range []struct {
		name string
		d    time.Duration
	}{{"read-header-timeout", c.ReadHeaderTimeout}, {"read-timeout", c.ReadTimeout}, {"write-timeout", c.WriteTimeout}, {"idle-timeout", c.IdleTimeout}} {
		if t.d <= 0 {
			bad("%s must be positive (without it any client can hold a connection open forever)", t.name)
		}
	}
	if c.StreamAutoPauseAfter < time.Minute {
		bad("stream-auto-pause-after must be at least 1m, not %s", c.StreamAutoPauseAfter)
	}
	if c.Ledger && c.CheckpointInterval < 10*time.Millisecond {
		bad("checkpoint-interval must be at least 10ms, not %s", c.CheckpointInterval)
	}
	if len(errs) > 0 {
		return fmt.Errorf("%w: %w", ErrInvalid, errors.Join(errs...))
	}
	return nil
}
