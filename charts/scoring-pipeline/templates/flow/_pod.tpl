{{/*
The pod template of a scoring flow, shared by the batch Job and the streaming Deployment.
Call with (dict "root" $ "flow" $flow "name" <flow object name>).
The flow waits for its scoring services itself (`tekscore flow run` polls /v2/health/ready with
a bounded deadline, TEKSCORE_READY_TIMEOUT), so there is no wait-for initContainer.
*/}}
{{- define "scoring-pipeline.flowPod" -}}
{{- $root := .root }}
{{- $flow := .flow }}
{{- $secrets := dict }}
{{- range $flow.secrets }}
{{- $_ := set $secrets .name (append (get $secrets .name | default list) .key) }}
{{- end -}}
metadata:
  labels:
    {{- include "scoring-pipeline.labels" $root | nindent 4 }}
    app.kubernetes.io/component: scoring-flow
    tekscore.dev/flow: {{ $flow.name | quote }}
  annotations:
    checksum/config: {{ include "scoring-pipeline.flowConfig" (dict "root" $root "flow" $flow) | sha256sum }}
    prometheus.io/scrape: "true"
    prometheus.io/port: "9090"
spec:
  automountServiceAccountToken: false
  enableServiceLinks: false
  {{- if eq $flow.mode "batch" }}
  restartPolicy: Never
  {{- end }}
  {{- with $root.Values.global.imagePullSecrets }}{{ include "scoring-pipeline.imagePullSecrets" $root | nindent 2 }}{{ end }}
  {{- include "scoring-pipeline.podSecurityContext" $root | nindent 2 }}
  containers:
    - name: scoring-flow
      image: {{ include "scoring-pipeline.image" $root | quote }}
      terminationMessagePolicy: FallbackToLogsOnError
      imagePullPolicy: {{ $root.Values.global.image.pullPolicy }}
      args:
        - flow
        - run
        - /etc/tekscore/flow.json
        - --metrics-port
        - "9090"
      env:
        {{- include "scoring-pipeline.commonEnv" $root | nindent 8 }}
        {{- with $root.Values.global.callbackUrl }}
        - name: TEKSCORE_CALLBACK_URL
          value: {{ . | quote }}
        {{- end }}
        - name: TEKSCORE_CALLBACK_TOKEN
          valueFrom:
            secretKeyRef:
              name: {{ printf "%s-callback" $root.Values.job.id | quote }}
              key: token
              optional: true
        - name: TEKSCORE_SECRETS_DIR
          value: /var/run/secrets/tekscore
        {{- /* who this process is in its reports: the scheduler keeps a row per replica */}}
        - name: TEKSCORE_POD_NAME
          valueFrom:
            fieldRef:
              fieldPath: metadata.name
      ports:
        - name: metrics
          containerPort: 9090
          protocol: TCP
        {{- if eq $flow.source.type "http" }}
        - name: http
          containerPort: {{ $flow.source.config.port | default 8080 }}
          protocol: TCP
        {{- end }}
      {{- if eq $flow.source.type "http" }}
      readinessProbe:
        tcpSocket:
          port: http
        periodSeconds: 5
        failureThreshold: 3
      {{- end }}
      {{- include "scoring-pipeline.containerSecurityContext" $root | nindent 6 }}
      volumeMounts:
        - name: config
          mountPath: /etc/tekscore
          readOnly: true
        - name: tmp
          mountPath: /tmp
        {{- range $i, $secret := keys $secrets | sortAlpha }}
        - name: {{ printf "secret-%d" $i }}
          mountPath: {{ printf "/var/run/secrets/tekscore/%s" $secret }}
          readOnly: true
        {{- end }}
  volumes:
    - name: config
      configMap:
        name: {{ .name }}
        items:
          - key: flow.json
            path: flow.json
    - name: tmp
      emptyDir: {}
    {{- range $i, $secret := keys $secrets | sortAlpha }}
    - name: {{ printf "secret-%d" $i }}
      secret:
        secretName: {{ $secret | quote }}
        defaultMode: 0440
        items:
          {{- range get $secrets $secret | uniq | sortAlpha }}
          - key: {{ . | quote }}
            path: {{ . | quote }}
          {{- end }}
    {{- end }}
{{- end }}
