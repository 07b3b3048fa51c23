{{/*
Names and labels. Every object of a service carries the chart's labels plus
app.kubernetes.io/component=<service>; selectors use the stable subset only, because a
Deployment's selector cannot change after install.
*/}}

{{/* The services this chart runs, in pipeline order; templates range over this list. */}}
{{- define "hiker.components" -}}
ingress conversation sender{{ if .Values.api.enabled }} api{{ end }}{{ if .Values.events.enabled }} events{{ end }}
{{- end }}

{{- define "hiker.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Truncated short of 63 so that "<fullname>-conversation" still fits a DNS label. */}}
{{- define "hiker.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 50 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 50 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 50 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "hiker.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "hiker.selectorLabels" -}}
app.kubernetes.io/name: {{ include "hiker.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "hiker.labels" -}}
helm.sh/chart: {{ include "hiker.chart" . }}
{{ include "hiker.selectorLabels" . }}
app.kubernetes.io/version: {{ .Values.image.tag | default .Chart.AppVersion | quote }}
app.kubernetes.io/part-of: hiker
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{/* Per-service helpers take (dict "root" $ "component" "<service>"). */}}
{{- define "hiker.componentFullname" -}}
{{- printf "%s-%s" (include "hiker.fullname" .root) .component }}
{{- end }}

{{- define "hiker.componentSelectorLabels" -}}
{{ include "hiker.selectorLabels" .root }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{- define "hiker.componentLabels" -}}
{{ include "hiker.labels" .root }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{- define "hiker.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "hiker.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "hiker.secretName" -}}
{{- default (include "hiker.fullname" .) .Values.secret.existingSecret }}
{{- end }}

{{- define "hiker.image" -}}
{{- printf "%s:%s" .Values.image.repository (.Values.image.tag | default .Chart.AppVersion) }}
{{- end }}

{{/*
A service's non-secret environment: shared `config`, overridden by the service's own `config`,
plus the ports the chart wires into probes and Services (so they cannot drift apart).
Its listeners are on every interface of the pod (Hiker's default, loopback, reaches nobody
there), unless `config` says otherwise (e.g. "::" on an IPv6 cluster); the NetworkPolicies
decide who connects.
Rendered as sorted YAML so its checksum only changes when a value does.
*/}}
{{- define "hiker.componentConfig" -}}
{{- $c := index .root.Values .component }}
{{- $env := merge (dict) (deepCopy $c.config) (deepCopy .root.Values.config) }}
{{- $_ := set $env "HIKER_METRICS_PORT" $c.metricsPort }}
{{- $_ := set $env "HIKER_METRICS_HOST" ($env.HIKER_METRICS_HOST | default "0.0.0.0") }}
{{- if $c.webhookPort }}
{{- $_ := set $env "HIKER_HTTP_PORT" $c.webhookPort }}
{{- $_ := set $env "HIKER_HTTP_HOST" ($env.HIKER_HTTP_HOST | default "0.0.0.0") }}
{{- end }}
{{- with .root.Values.amqp.quorumInitialGroupSize }}
{{- $_ := set $env "HIKER_AMQP_QUORUM_GROUP_SIZE" . }}
{{- end }}
{{- if has .component (list "conversation" "sender" "events") }}
{{- $redis := .root.Values.redis }}
{{- if eq $redis.mode "sentinel" }}
{{- $_ := set $env "HIKER_REDIS_SENTINELS" (required "redis.sentinel.hosts: list the sentinels (host:port) for redis.mode sentinel" $redis.sentinel.hosts | join ",") }}
{{- $_ := set $env "HIKER_REDIS_SENTINEL_MASTER" $redis.sentinel.masterSet }}
{{- else if eq $redis.mode "cluster" }}
{{- $_ := set $env "HIKER_REDIS_CLUSTER" "true" }}
{{- end }}
{{- end }}
{{- if $c.apiPort }}
{{- $_ := set $env "HIKER_API_PORT" $c.apiPort }}
{{- $_ := set $env "HIKER_API_HOST" ($env.HIKER_API_HOST | default "0.0.0.0") }}
{{- end }}
{{- if eq .component "conversation" }}
{{- if include "hiker.rulesConfigMapName" .root }}
{{- $_ := set $env "HIKER_RULES_FILE" "/etc/hiker/rules.yaml" }}
{{- end }}
{{- with $c.responder }}
{{- $_ := set $env "HIKER_RESPONDER" . }}
{{- end }}
{{- with $c.bot.module }}
{{- if $c.responder }}
{{- fail "conversation.bot.module and conversation.responder are both set: set one of them" }}
{{- end }}
{{- $_ := set $env "HIKER_BOT" . }}
{{- $_ := set $env "HIKER_BOT_PATH" $c.bot.path }}
{{- end }}
{{- with $c.ai }}
{{- if .baseUrl }}
{{- $_ := set $env "HIKER_AI_BASE_URL" .baseUrl }}
{{- $_ := set $env "HIKER_AI_MODEL" (required "conversation.ai.model is required with conversation.ai.baseUrl (Azure OpenAI: the deployment name)" .model) }}
{{- with .transcribeModel }}
{{- $_ := set $env "HIKER_AI_TRANSCRIBE_MODEL" . }}
{{- end }}
{{- $_ := set $env "HIKER_AI_VISION" (toString .vision) }}
{{- $_ := set $env "HIKER_AI_HISTORY_TURNS" (toString .historyTurns) }}
{{- $_ := set $env "HIKER_AI_DEBOUNCE_MS" (toString .debounceMs) }}
{{- $_ := set $env "HIKER_AI_MAX_TOOL_ROUNDS" (toString .maxToolRounds) }}
{{- with .maxTokensPerUserDay }}
{{- $_ := set $env "HIKER_AI_MAX_TOKENS_PER_USER_DAY" (toString .) }}
{{- end }}
{{- with .maxTokensPerNumberDay }}
{{- $_ := set $env "HIKER_AI_MAX_TOKENS_PER_NUMBER_DAY" (toString .) }}
{{- end }}
{{- $_ := set $env "HIKER_AI_OVER_BUDGET" .overBudget }}
{{- $_ := set $env "HIKER_AI_TIMEOUT_SECONDS" (toString .timeoutSeconds) }}
{{- $_ := set $env "HIKER_AI_GIVE_UP_SECONDS" (toString .giveUpSeconds) }}
{{- $_ := set $env "HIKER_AI_PREFETCH" (toString .prefetch) }}
{{- if include "hiker.aiPromptConfigMapName" $.root }}
{{- $_ := set $env "HIKER_AI_SYSTEM_PROMPT_FILE" "/etc/hiker-ai/system-prompt.txt" }}
{{- end }}
{{- end }}
{{- end }}
{{- end }}
{{- range $key := keys $env | sortAlpha }}
{{ $key }}: {{ index $env $key | toString | quote }}
{{- end }}
{{- end }}

{{/* The idle timeout conversation runs with, in whole seconds (for alert windows). */}}
{{- define "hiker.idleTimeoutSeconds" -}}
{{- $env := merge (dict) (deepCopy .Values.conversation.config) (deepCopy .Values.config) }}
{{- $env.HIKER_IDLE_TIMEOUT_SECONDS | default 600 | float64 | ceil | int }}
{{- end }}

{{/*
The ConfigMap conversation's rules file comes from: the existing one, the chart's own when
`conversation.rules` is set, or empty (no rules file: the built-in rules).
*/}}
{{/*
The ConfigMap of the AI responder's system prompt (key system-prompt.txt): the existing one, the
chart's own when `conversation.ai.systemPrompt` is set, or empty (no prompt file). Only with
`conversation.ai.baseUrl`.
*/}}
{{- define "hiker.aiPromptConfigMapName" -}}
{{- $ai := .Values.conversation.ai }}
{{- if $ai.baseUrl }}
{{- if $ai.existingSystemPromptConfigMap }}
{{- $ai.existingSystemPromptConfigMap }}
{{- else if $ai.systemPrompt }}
{{- include "hiker.componentFullname" (dict "root" . "component" "conversation") }}-ai-prompt
{{- end }}
{{- end }}
{{- end }}

{{- define "hiker.rulesConfigMapName" -}}
{{- if .Values.conversation.existingRulesConfigMap }}
{{- .Values.conversation.existingRulesConfigMap }}
{{- else if .Values.conversation.rules }}
{{- include "hiker.componentFullname" (dict "root" . "component" "conversation") }}-rules
{{- end }}
{{- end }}

{{/*
The ConfigMap of the bot's files mounted at conversation.bot.path: the existing one, the chart's
own when `conversation.bot.files` is set, or empty (the bot, if any, is in the image).
*/}}
{{- define "hiker.botConfigMapName" -}}
{{- $bot := .Values.conversation.bot }}
{{- if $bot.existingConfigMap }}
{{- $bot.existingConfigMap }}
{{- else if $bot.files }}
{{- include "hiker.componentFullname" (dict "root" . "component" "conversation") }}-bot
{{- end }}
{{- end }}

{{/*
The environment a service takes from Secrets: the broker and Redis URLs, its own `secretKeys`,
and for the services that use Redis the passwords kept in Secrets of their own. Under Sentinel
the Redis URL may be absent (the sentinels name the primary).
*/}}
{{- define "hiker.secretEnv" -}}
{{- $c := index .root.Values .component }}
{{- $redis := .root.Values.redis }}
{{- range $key := concat (list "HIKER_AMQP_URL" "HIKER_REDIS_URL") $c.secretKeys }}
- name: {{ $key }}
  valueFrom:
    secretKeyRef:
      name: {{ include "hiker.secretName" $.root }}
      key: {{ $key }}
      {{- if and (eq $key "HIKER_REDIS_URL") (eq $redis.mode "sentinel") }}
      optional: true
      {{- else if has $key (list "HIKER_ACCESS_TOKEN" "HIKER_ACCESS_TOKENS") }}
      # One token or the per-number list suffices; the sender names what is missing.
      optional: true
      {{- else if has $key (list "HIKER_APP_SECRET" "HIKER_APP_SECRETS") }}
      # One secret or the list suffices; ingress names what is missing.
      optional: true
      {{- else if has $key (list "HIKER_API_TOKEN" "HIKER_API_TOKENS") }}
      # One token or the scoped list suffices; the api names what is missing.
      optional: true
      {{- else if eq $key "HIKER_AI_API_KEY" }}
      # Local model servers take no key.
      optional: true
      {{- end }}
{{- end }}
{{- if has .component (list "conversation" "sender" "events") }}
{{- with $redis.passwordSecret }}
{{- if .name }}
- name: HIKER_REDIS_PASSWORD
  valueFrom:
    secretKeyRef:
      name: {{ .name }}
      key: {{ .key }}
{{- end }}
{{- end }}
{{- if eq $redis.mode "sentinel" }}
{{- with $redis.sentinel.passwordSecret }}
{{- if .name }}
- name: HIKER_REDIS_SENTINEL_PASSWORD
  valueFrom:
    secretKeyRef:
      name: {{ .name }}
      key: {{ .key }}
{{- end }}
{{- end }}
{{- end }}
{{- end }}
{{- end }}
