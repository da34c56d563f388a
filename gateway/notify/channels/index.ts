import type { Logger } from "pino";
import type { Clock } from "../../clock/index.ts";
import type { Config } from "../../config/index.ts";
import type { PushSubscriptionRepository } from "../../store/types.ts";
import type { OutboundGuard } from "../outbound.ts";
import { AliyunSmsChannel, AliyunVoiceChannel } from "./aliyun.ts";
import type { Channel } from "./channel.ts";
import { PushChannel, type VapidKeys } from "./push.ts";
import { DingtalkChannel, WecomChannel } from "./robots.ts";
import { WebhookChannel } from "./webhook.ts";

export type { Channel, Outgoing, SendResult } from "./channel.ts";
export { loadVapidKeys, type PushPayload, type VapidKeys } from "./push.ts";
export { signWebhook } from "./webhook.ts";

/** Every channel whose settings are complete: the webhook and Web Push always, the others when configured. */
export function channelsFrom(
  config: Config,
  deps: {
    outbound: OutboundGuard;
    clock: Clock;
    log: Logger;
    subscriptions: PushSubscriptionRepository;
    vapidKeys: VapidKeys;
  },
): Channel[] {
  const provider = { timeoutMs: config.CHANNEL_TIMEOUT_MS, retryDelaysMs: config.CHANNEL_RETRY_DELAYS_MS };
  const robot = { ...provider, perMinute: config.ROBOT_PER_MINUTE };
  const { wecom, dingtalk, sms, voice, push } = config.channels;
  return [
    new WebhookChannel(deps, {
      secret: config.WEBHOOK_SECRET,
      timeoutMs: config.WEBHOOK_TIMEOUT_MS,
      retryDelaysMs: config.WEBHOOK_RETRY_DELAYS_MS,
      concurrency: config.WEBHOOK_CONCURRENCY,
    }),
    new PushChannel(deps, { ...provider, keys: deps.vapidKeys, subject: push.subject }),
    ...(wecom ? [new WecomChannel(deps, wecom, robot)] : []),
    ...(dingtalk ? [new DingtalkChannel(deps, dingtalk, robot)] : []),
    ...(sms ? [new AliyunSmsChannel(deps, sms, provider)] : []),
    ...(voice ? [new AliyunVoiceChannel(deps, voice, provider)] : []),
  ];
}
