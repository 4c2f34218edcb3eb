// Connectors (audit streaming to third-party services). The delivery engine
// exists; its management routes are not served yet, so this page says so
// rather than pretending.
import { h, clear } from './dom.js';

export function mount(main) {
  document.title = 'Connectors · audittrail';
  clear(main).append(h('section.page.connectors', { 'aria-labelledby': 'connectors-title' },
    h('h1#connectors-title', 'Connectors'),
    h('div.card.placeholder',
      h('p', 'Streaming connectors send every audit event to a webhook, Splunk, Datadog, Sumo Logic, OpenTelemetry, syslog, NATS, Kafka or S3.'),
      h('p', 'Their management from the console (list with state, lag and last error; create a webhook; pause, resume, test and replay) is not available yet in this build.'),
      h('p', 'Once streaming is enabled on the server, Descope-compatible webhooks are created with the SDKs\u2019 createAuditWebhook (', h('code', 'POST /v2/mgmt/connector/audit/web/set'), ').'))));
  return () => {};
}
