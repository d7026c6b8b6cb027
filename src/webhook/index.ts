// Webhook receivers for GitHub, Gitea and GitLab push events (docs/design.md §5).

export { DeliveryCache } from './delivery-cache.js';
export { PROVIDERS, PROVIDER_SPECS, parsePush, type Provider, type PushInfo } from './providers.js';
export { WebhookReceiver, loadWebhookSecret, type WebhookEvent, type WebhookReceiverOptions, type WebhookResult } from './receiver.js';
export { hmacSha256, verifyGiteaSignature, verifyGithubSignature, verifyGitlabToken } from './signature.js';
