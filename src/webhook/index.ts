// Webhook receivers for GitHub, Gitea and GitLab push events (docs/design.md §5).

export { cameInCleartext, isLoopbackAddress } from './cleartext.js';
export { BodyReplayLimit, DEFAULT_REPLAY_LIMIT, DEFAULT_REPLAY_WINDOW_MS, type BodyReplayLimitOptions } from './body-replay-limit.js';
export { ConnectionSlots } from './connection-slots.js';
export { DeliveryCache } from './delivery-cache.js';
export { InFlightBudget } from './in-flight-budget.js';
export { PROVIDERS, PROVIDER_SPECS, parsePush, type Provider, type PushInfo } from './providers.js';
export { WebhookReceiver, WEBHOOK_LIMITS, type WebhookEvent, type WebhookReceiverOptions, type WebhookResult } from './receiver.js';
export { loadSecretFiles, loadWebhookSecret, parseSecretFileFlags, SHARED_SECRET_PROVIDERS, type SecretFiles } from './secret-files.js';
export { hmacSha256, verifyGiteaSignature, verifyGithubSignature, verifyGitlabToken } from './signature.js';
