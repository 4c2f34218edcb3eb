package bench

import "github.com/audittrail/audittrail/internal/event"

// genAction is one action name with its type and relative frequency. The
// first 21 names are the project-level actions Descope documents; the rest
// follow Descope's naming for the other things a project audits (roles,
// tenants, SSO, flows, connectors). Weights are roughly Zipf-like: logins
// and refreshes dominate real trails, administrative changes are rare.
type genAction struct {
	name   string
	typ    string
	weight float64
	kind   actionKind
}

type actionKind uint8

const (
	kindAuth  actionKind = iota // an end-user authentication step: method, device, login IDs
	kindUser                    // a change to a user by an admin or the user
	kindSCIM                    // a SCIM request from an identity provider
	kindAdmin                   // a project configuration change by a Descoper or key
)

var genActions = []genAction{
	{"LoginSucceed", event.TypeInfo, 300, kindAuth},
	{"UserRefresh", event.TypeInfo, 220, kindAuth},
	{"LoginStarted", event.TypeInfo, 150, kindAuth},
	{"LoginFailed", event.TypeWarn, 60, kindAuth},
	{"UserModified", event.TypeInfo, 40, kindUser},
	{"SCIMEvent", event.TypeInfo, 30, kindSCIM},
	{"LoginStartedFailed", event.TypeWarn, 20, kindAuth},
	{"UserCreated", event.TypeInfo, 18, kindUser},
	{"Logout", event.TypeInfo, 16, kindAuth},
	{"SignUpSucceed", event.TypeInfo, 12, kindAuth},
	{"UsersModified", event.TypeInfo, 8, kindUser},
	{"PasswordReplaced", event.TypeInfo, 7, kindAuth},
	{"PasswordResetStarted", event.TypeInfo, 6, kindAuth},
	{"LoginExceedMaxAttempts", event.TypeWarn, 5, kindAuth},
	{"UserDeleted", event.TypeInfo, 5, kindUser},
	{"UsersCreated", event.TypeInfo, 4, kindUser},
	{"MFAEnrolled", event.TypeInfo, 4, kindAuth},
	{"StepUpSucceed", event.TypeInfo, 3.5, kindAuth},
	{"AccessKeyCreated", event.TypeInfo, 3, kindAdmin},
	{"AccessKeyModified", event.TypeInfo, 2.5, kindAdmin},
	{"UserActivated", event.TypeInfo, 2.4, kindUser},
	{"UserDisabled", event.TypeWarn, 2.2, kindUser},
	{"TenantCreated", event.TypeInfo, 2, kindAdmin},
	{"TenantModified", event.TypeInfo, 1.9, kindAdmin},
	{"UsersDeleted", event.TypeInfo, 1.8, kindUser},
	{"AccessKeyDeleted", event.TypeInfo, 1.7, kindAdmin},
	{"RoleModified", event.TypeInfo, 1.6, kindAdmin},
	{"UserRolesUpdated", event.TypeInfo, 1.5, kindUser},
	{"UserTenantsUpdated", event.TypeInfo, 1.4, kindUser},
	{"SSOSettingsModified", event.TypeWarn, 1.3, kindAdmin},
	{"RoleCreated", event.TypeInfo, 1.2, kindAdmin},
	{"PermissionModified", event.TypeInfo, 1.1, kindAdmin},
	{"PermissionCreated", event.TypeInfo, 1.0, kindAdmin},
	{"AccessKeysDeleted", event.TypeInfo, 0.9, kindAdmin},
	{"TenantDeleted", event.TypeWarn, 0.85, kindAdmin},
	{"RoleDeleted", event.TypeWarn, 0.8, kindAdmin},
	{"PermissionDeleted", event.TypeWarn, 0.75, kindAdmin},
	{"FlowModified", event.TypeInfo, 0.7, kindAdmin},
	{"FlowCreated", event.TypeInfo, 0.6, kindAdmin},
	{"ThemeModified", event.TypeInfo, 0.55, kindAdmin},
	{"ConnectorCreated", event.TypeInfo, 0.5, kindAdmin},
	{"ConnectorModified", event.TypeInfo, 0.45, kindAdmin},
	{"JWTTemplateModified", event.TypeInfo, 0.4, kindAdmin},
	{"ProjectSettingsModified", event.TypeWarn, 0.38, kindAdmin},
	{"AuthMethodSettingsModified", event.TypeWarn, 0.35, kindAdmin},
	{"ThirdPartyApplicationCreated", event.TypeInfo, 0.3, kindAdmin},
	{"ThirdPartyApplicationModified", event.TypeInfo, 0.28, kindAdmin},
	{"ThirdPartyApplicationDeleted", event.TypeWarn, 0.25, kindAdmin},
	{"SSOApplicationCreated", event.TypeInfo, 0.22, kindAdmin},
	{"SSOApplicationDeleted", event.TypeWarn, 0.2, kindAdmin},
	{"ConnectorDeleted", event.TypeWarn, 0.18, kindAdmin},
	{"FlowDeleted", event.TypeWarn, 0.16, kindAdmin},
	{"ProjectExported", event.TypeWarn, 0.1, kindAdmin},
	{"ProjectImported", event.TypeWarn, 0.08, kindAdmin},
	{"ProjectDeleted", event.TypeWarn, 0.02, kindAdmin},
}

// Company-level actions: the admin calls of our own API (docs/api.md).
var genCompanyActions = []genAction{
	{"ManagementKeyCreated", event.TypeInfo, 30, kindAdmin},
	{"ManagementKeyRotated", event.TypeInfo, 25, kindAdmin},
	{"CompanySettingsModified", event.TypeInfo, 20, kindAdmin},
	{"ProjectCreated", event.TypeInfo, 10, kindAdmin},
	{"ManagementKeyRevoked", event.TypeWarn, 10, kindAdmin},
	{"ProjectDeleted", event.TypeWarn, 5, kindAdmin},
}

// Devices with their shares of end-user events.
var genDevices = []weighted{{"Desktop", 55}, {"Mobile", 30}, {"Unknown", 7}, {"Tablet", 5}, {"Bot", 3}}

// The eight authentication methods; Impersonate appears on LoginSucceed only.
var genMethods = []weighted{
	{"otp", 25}, {"password", 20}, {"oauth", 18}, {"magiclink", 12},
	{"saml", 10}, {"webauthn", 7}, {"totp", 5}, {"enchantedlink", 3},
}

// About fifty countries, skewed the way a US-centred product's users are.
var genGeos = func() []weighted {
	codes := []string{"US", "GB", "DE", "IN", "IL", "FR", "CA", "BR", "JP", "AU",
		"NL", "ES", "IT", "SE", "PL", "MX", "SG", "CH", "KR", "IE",
		"BE", "AT", "DK", "NO", "FI", "PT", "CZ", "RO", "TR", "AR",
		"CL", "CO", "ZA", "NG", "EG", "AE", "SA", "PH", "ID", "VN",
		"TH", "MY", "NZ", "UA", "GR", "HU", "HK", "TW", "PK", "KE"}
	out := make([]weighted, len(codes))
	for i, c := range codes {
		out[i] = weighted{c, 1000 / float64(i+2)}
	}
	return out
}()

var genUserAgents = []weighted{
	{"Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36", 30},
	{"Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36", 15},
	{"Mozilla/5.0 (iPhone; CPU iPhone OS 17_6 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.6 Mobile/15E148 Safari/604.1", 14},
	{"Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.6778.39 Mobile Safari/537.36", 10},
	{"Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1 Safari/605.1.15", 8},
	{"Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:133.0) Gecko/20100101 Firefox/133.0", 6},
	{"Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36 Edg/131.0.0.0", 5},
	{"Mozilla/5.0 (iPad; CPU OS 17_6 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.6 Mobile/15E148 Safari/604.1", 3},
	{"Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/130.0.0.0 Safari/537.36", 3},
	{"Mozilla/5.0 (X11; Ubuntu; Linux x86_64; rv:132.0) Gecko/20100101 Firefox/132.0", 1.5},
	{"okhttp/4.12.0", 1.5},
	{"Dalvik/2.1.0 (Linux; U; Android 13; SM-S918B Build/TP1A.220624.014)", 1},
	{"curl/8.5.0", 0.6},
	{"python-requests/2.32.3", 0.5},
	{"Go-http-client/2.0", 0.4},
	{"Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)", 0.3},
}

var genSDKs = []weighted{{"web-js", 40}, {"react", 25}, {"nodejs", 10}, {"go", 8}, {"python", 7}, {"swift", 5}, {"kotlin", 5}}

var genErrorMessages = []weighted{
	{"Wrong password", 30}, {"OTP code is incorrect", 20}, {"OTP code expired", 10},
	{"User not found", 12}, {"Magic link expired", 8}, {"Too many attempts, try again later", 5},
	{"OAuth provider returned an error: access_denied", 5}, {"SAML assertion signature is invalid", 3},
	{"Passkey was not recognised", 4}, {"User is disabled", 3},
}

var genFirstNames = []string{"James", "Mary", "Robert", "Patricia", "John", "Jennifer", "Michael", "Linda",
	"David", "Elizabeth", "William", "Barbara", "Richard", "Susan", "Joseph", "Jessica", "Thomas", "Sarah",
	"Noa", "Yael", "Omer", "Tamar", "Lukas", "Lena", "Hiroshi", "Yuki", "Priya", "Arjun", "Sofia", "Mateo",
	"Zoë", "Łukasz", "Søren", "Chloé", "Björn", "Amélie", "Olu", "Chen", "Wei", "Fatima", "Ahmed", "Ana"}

var genLastNames = []string{"Smith", "Johnson", "Williams", "Brown", "Jones", "Garcia", "Miller", "Davis",
	"Rodriguez", "Martinez", "Hernandez", "Lopez", "Wilson", "Anderson", "Taylor", "Thomas", "Moore",
	"Cohen", "Levi", "Mizrahi", "Müller", "Schmidt", "Schneider", "Tanaka", "Suzuki", "Sato", "Sharma",
	"Patel", "Kumar", "Rossi", "Nowak", "Kowalski", "Ørsted", "Jensen", "Dubois", "Silva", "Santos", "Kim",
	"Park", "Nguyen", "Okafor", "Adeyemi"}

var genDomains = []weighted{{"gmail.com", 40}, {"outlook.com", 12}, {"yahoo.com", 8}, {"icloud.com", 6},
	{"acme.com", 5}, {"globex.io", 4}, {"initech.com", 4}, {"example.org", 3}, {"umbrella.co", 3},
	{"proton.me", 3}, {"hooli.xyz", 2}, {"contoso.com", 2}, {"wayne-enterprises.com", 1}, {"stark.industries", 1}}

// Fields a UserModified event's data.Change may carry (Descope's names).
var genChangeFields = []weighted{{"display_name", 20}, {"added_roles", 16}, {"removed_roles", 8},
	{"custom_attribute_plan", 10}, {"custom_attribute_department", 8}, {"phone", 8}, {"given_name", 6},
	{"family_name", 6}, {"middle_name", 2}, {"added_multi_tenant_roles", 7}, {"email", 5}, {"picture", 3},
	{"verified_email", 4}, {"status", 3}}

var genRoles = []string{"Tenant Admin", "Editor", "Viewer", "Billing Admin", "Support", "Auditor", "Owner",
	"Developer", "Analyst", "Read Only"}

var genPlans = []string{"free", "pro", "team", "business", "enterprise"}

var genDepartments = []string{"Engineering", "Sales", "Marketing", "Finance", "Legal", "Support", "Operations",
	"Human Resources", "Product", "Security"}

var genSCIMActions = []weighted{{"create", 30}, {"update", 25}, {"patch", 30}, {"delete", 10}, {"get", 5}}

var genIdPs = []string{"Okta", "Azure AD", "Google Workspace", "OneLogin", "JumpCloud", "Ping Identity"}

var genOAuthProviders = []string{"google", "github", "microsoft", "apple", "facebook", "gitlab", "slack"}

// TextWords are everyday words that occur in the generated data (browsers,
// systems, error messages, roles, identity providers): the values of the
// one-word text search shapes. Each must occur in a fair share of events.
var TextWords = []string{"chrome", "safari", "firefox", "iphone", "android", "windows", "macintosh",
	"linux", "mobile", "okhttp", "password", "expired", "incorrect", "refresh", "otp", "admin", "okta",
	"google", "github", "descope", "enterprise", "gmail", "outlook", "webauthn"}
