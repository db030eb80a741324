{{/*
scoring-server-tensorflow renders no object at install time: what it gives the platform is in its values
(supportedModels for a scoring server, build.steps), read by the umbrella chart tekscore.
*/}}
