import Foundation

/// The OpenAPI 3.0 document served at `/openapi.json`: every route, its parameters, bodies and answers.
/// A test checks its paths and methods against the router's.
enum OpenAPI {
    static func document(version: String, tokenRequired: Bool) -> [String: Any] {
        let error: [String: Any] = ["description": "An error: one sentence.",
                                    "content": ["application/json": ["schema": ["$ref": "#/components/schemas/Error"]]]]
        func errors(_ codes: [String]) -> [String: Any] {
            var d: [String: Any] = [:]
            for c in codes { d[c] = error }
            return d
        }
        func json(_ description: String, _ schema: [String: Any] = ["type": "object"]) -> [String: Any] {
            ["description": description, "content": ["application/json": ["schema": schema]]]
        }
        func query(_ name: String, _ type: String, _ description: String, repeatable: Bool = false) -> [String: Any] {
            let schema: [String: Any] = repeatable ? ["type": "array", "items": ["type": type]] : ["type": type]
            return ["name": name, "in": "query", "required": false, "description": description, "schema": schema,
                    "explode": true]
        }
        let busy = ["400", "401", "413", "429", "503"]
        let binary: [String: Any] = ["type": "string", "format": "binary"]
        let idParameter: [String: Any] = ["name": "id", "in": "path", "required": true, "schema": ["type": "string"]]

        let faces: [String: Any] = [
            "summary": "Faces in one picture: boxes, landmarks, detection probability, expression probabilities (valence/arousal for multi-task models), features on request. Boxes equal `affect faces`.",
            "parameters": [query("min_face", "number", "Smallest face side in pixels, 12 to 10000 (default 40)."),
                           query("model", "string", "A loaded face model's name (default: the first loaded)."),
                           query("features", "boolean", "Include each face's feature vector.")],
            "requestBody": ["required": true, "content": ["image/jpeg": ["schema": binary], "image/png": ["schema": binary],
                                                          "application/octet-stream": ["schema": binary]]],
            "responses": ["200": json("The faces found.", ["$ref": "#/components/schemas/Faces"])].merging(errors(busy + ["500"])) { a, _ in a },
        ]
        let analyzeParameters: [[String: Any]] = [
            query("every", "integer", "Analyse one frame in N, 1 to 10000."),
            query("fps", "number", "Analyse about this many frames per second, 0.001 to 1000 (instead of every)."),
            query("min_face", "number", "Smallest face side in pixels, 12 to 10000."),
            query("tracks", "string", "largest or all."),
            query("min_track", "integer", "With tracks=all: least detections of a reported track."),
            query("t", "number", "Confidence filter threshold in [0, 1]."),
            query("w", "string", "Late-fusion weights in [0, 1], comma-separated."),
            query("delta", "integer", "Window smoothing radius in frames, 0 to 100000."),
            query("median", "boolean", "With delta: window median instead of mean."),
            query("sigma", "number", "Gaussian smoothing sigma in frames, 0.01 to 1000."),
            query("au_thresholds", "string", "12 comma-separated AU thresholds in [0, 1]."),
            query("face_model", "string", "A loaded face model's name."),
            query("expression_model", "string", "A loaded face model's name for the probabilities and the filter."),
            query("expr_head", "string", "A loaded head's name (repeatable: late fusion).", repeatable: true),
            query("va_head", "string", "A loaded head's name.", repeatable: true),
            query("au_head", "string", "A loaded head's name.", repeatable: true),
            query("ah_head", "string", "A loaded head's name.", repeatable: true),
            query("emi_head", "string", "A loaded head's name.", repeatable: true),
        ]
        var paths: [String: Any] = [
            "/": ["get": ["summary": "The web page: a video or the webcam, analysed, with boxes and timelines (no token needed to load it).", "security": [],
                          "responses": ["200": ["description": "HTML.", "content": ["text/html": ["schema": ["type": "string"]]]]]]],
            "/healthz": ["get": ["summary": "Liveness and load; never needs the token.", "security": [],
                                 "responses": ["200": json("The server is up.")]]],
            "/openapi.json": ["get": ["summary": "This document.", "responses": ["200": json("OpenAPI 3 document.")].merging(errors(["401"])) { a, _ in a }]],
            "/v1/models": ["get": ["summary": "The models loaded at start, by name.",
                                   "responses": ["200": json("Models.")].merging(errors(["401"])) { a, _ in a }]],
            "/v1/faces": ["post": faces],
            "/v1/analyze": ["post": [
                "summary": "Starts `affect analyze` on an uploaded video (streamed to disk); answers the job.",
                "parameters": analyzeParameters,
                "requestBody": ["required": true, "content": ["application/octet-stream": ["schema": binary], "video/*": ["schema": binary]]],
                "responses": ["202": json("The job, queued.", ["$ref": "#/components/schemas/Job"])].merging(errors(busy + ["500"])) { a, _ in a },
            ]],
            "/v1/jobs/{id}": [
                "get": ["summary": "A job's state and progress.", "parameters": [idParameter],
                        "responses": ["200": json("The job.", ["$ref": "#/components/schemas/Job"])].merging(errors(["401", "404"])) { a, _ in a }],
                "delete": ["summary": "Cancels a queued or running job, or forgets a finished one with its files.", "parameters": [idParameter],
                           "responses": ["200": json("The job as it was.", ["$ref": "#/components/schemas/Job"])].merging(errors(["401", "404"])) { a, _ in a }],
            ],
            "/v1/jobs/{id}/result": ["get": [
                "summary": "A finished job's result, byte for byte `affect analyze -o out.csv|out.json`.",
                "parameters": [idParameter, query("format", "string", "csv (default) or json.")],
                "responses": ["200": ["description": "The result.", "content": ["text/csv": ["schema": ["type": "string"]], "application/json": ["schema": ["type": "object"]]]]]
                    .merging(errors(["400", "401", "404", "409"])) { a, _ in a },
            ]],
            "/v1/stream": ["get": [
                "summary": "WebSocket: pictures and 16 kHz audio in, one answer per message, in order.",
                "description": """
                    Every binary message is answered, in order, with one text message (JSON).
                    A picture (JPEG or PNG) is answered with that frame's faces (as /v1/faces, plus a track id that persists across the stream) and `frame`, its index among the stream's pictures (schema StreamFrame).
                    A PCM chunk is a binary message that starts with the four ASCII bytes `S16L` (mono signed 16-bit little-endian samples follow) or `F32L` (mono 32-bit float little-endian samples in [-1, 1] follow), at 16 kHz (the audio model's `sample_rate`), 1 sample to 30 s per chunk.
                    It is answered with the audio model's result for the 20 ms frames that chunk completes: their mean last hidden state (`embedding`) and, for CTC models, the characters they add (`text`; the stream's transcript is the concatenation) (schema StreamAudio).
                    Each chunk is run with the 2 s of audio before it as context; only that context is kept between chunks.
                    A bad message is answered with `error` and `status` (and `frame` or `chunk`); the stream goes on, and a refused chunk does not advance the audio clock.
                    Browsers, which cannot set headers on a WebSocket, send the token as the subprotocol `affect.token.<hex of the token's bytes>` beside `affect`; the server answers with `affect`.
                    """,
                "parameters": [query("min_face", "number", "As /v1/faces."), query("model", "string", "As /v1/faces."),
                               query("features", "boolean", "As /v1/faces."),
                               query("audio_model", "string", "A loaded wav2vec2 / hubert model for PCM chunks (default: the first that transcribes, else the first).")],
                "responses": ["101": ["description": "Switching to the WebSocket protocol."]].merging(errors(["400", "401", "426", "429"])) { a, _ in a },
            ]],
        ]
        paths["/v1/transcribe"] = ["post": [
            "summary": "Speech to text with a loaded CTC model (wav2vec2 / hubert with a CTC head): `affect transcribe --format json`.",
            "parameters": [query("model", "string", "A loaded audio model's name (default: the first that transcribes).")],
            "requestBody": ["required": true, "content": ["application/octet-stream": ["schema": binary], "audio/*": ["schema": binary]]],
            "responses": ["200": json("text and words with start/end seconds.")].merging(errors(busy + ["500"])) { a, _ in a },
        ]]
        paths["/v1/embed-audio"] = ["post": [
            "summary": "Audio embeddings (last hidden state or hidden_states[layer]) of an uploaded audio or video file, per 20 ms frame or pooled.",
            "parameters": [query("model", "string", "A loaded audio model's name."), query("layer", "integer", "hidden_states index."),
                           query("pool", "string", "none (frames), mean or stat.")],
            "requestBody": ["required": true, "content": ["application/octet-stream": ["schema": binary], "audio/*": ["schema": binary]]],
            "responses": ["200": json("shape and values (row-major).")].merging(errors(busy + ["500"])) { a, _ in a },
        ]]
        paths["/v1/embed-text"] = ["post": [
            "summary": "Text embeddings with a loaded bert / roberta model.",
            "parameters": [query("model", "string", "A loaded text model's name."), query("pool", "string", "sentence (default), mean, cls or token.")],
            "requestBody": ["required": true, "content": ["application/json": ["schema": ["type": "object", "properties": ["texts": ["type": "array", "items": ["type": "string"]]]]],
                                                          "text/plain": ["schema": ["type": "string"]]]],
            "responses": ["200": json("shape and values (row-major).")].merging(errors(busy + ["500"])) { a, _ in a },
        ]]
        var doc: [String: Any] = [
            "openapi": "3.0.3",
            "info": ["title": "affect serve", "version": version,
                     "description": "Audio-visual emotion recognition over HTTP: the Affect library's detector, face models and pipeline. Errors are {\"error\": \"...\"} with a 4xx/5xx status; 429 and 503 carry Retry-After."],
            "paths": paths,
            "components": [
                "schemas": [
                    "Error": ["type": "object", "required": ["error"], "properties": ["error": ["type": "string"]]],
                    "Face": ["type": "object", "properties": [
                        "box": ["type": "array", "items": ["type": "number"], "description": "x1, y1, x2, y2 in pixels"],
                        "probability": ["type": "number"],
                        "landmarks": ["type": "array", "items": ["type": "array", "items": ["type": "number"]]],
                        "expressions": ["type": "object", "additionalProperties": ["type": "number"]],
                        "expression": ["type": "string"],
                        "valence": ["type": "number"], "arousal": ["type": "number"],
                        "features": ["type": "array", "items": ["type": "number"]],
                        "track": ["type": "integer"],
                    ]],
                    "Faces": ["type": "object", "properties": [
                        "width": ["type": "integer"], "height": ["type": "integer"], "model": ["type": "string"],
                        "faces": ["type": "array", "items": ["$ref": "#/components/schemas/Face"]],
                    ]],
                    "StreamFrame": ["type": "object", "description": "/v1/stream's answer to a picture.", "properties": [
                        "frame": ["type": "integer", "description": "Index among the stream's pictures."],
                        "width": ["type": "integer"], "height": ["type": "integer"], "model": ["type": "string"],
                        "faces": ["type": "array", "items": ["$ref": "#/components/schemas/Face"]],
                        "error": ["type": "string"], "status": ["type": "integer"], "retry_after": ["type": "integer"],
                    ]],
                    "StreamAudio": ["type": "object", "description": "/v1/stream's answer to a PCM chunk.", "properties": [
                        "chunk": ["type": "integer", "description": "Index among the stream's accepted chunks."],
                        "model": ["type": "string"], "sample_rate": ["type": "integer"],
                        "start": ["type": "number", "description": "Seconds of stream audio before this chunk."],
                        "end": ["type": "number", "description": "Seconds of stream audio including this chunk."],
                        "first_frame": ["type": "integer", "description": "Stream index of the first 20 ms frame answered."],
                        "frames": ["type": "integer", "description": "Frames this chunk completes (0 when it completes none)."],
                        "embedding": ["type": "array", "items": ["type": "number"], "description": "Mean last hidden state of those frames."],
                        "text": ["type": "string", "description": "CTC models: the characters those frames add (the word delimiter as a space)."],
                        "error": ["type": "string"], "status": ["type": "integer"], "retry_after": ["type": "integer"],
                    ]],
                    "Job": ["type": "object", "properties": [
                        "id": ["type": "string"], "state": ["type": "string", "enum": ["queued", "running", "done", "failed", "cancelled"]],
                        "frames_done": ["type": "integer"], "frames_total": ["type": "integer"], "progress": ["type": "number"],
                        "error": ["type": "string"],
                    ]],
                ],
                "securitySchemes": ["bearer": ["type": "http", "scheme": "bearer"]],
            ],
        ]
        if tokenRequired { doc["security"] = [["bearer": []]] }
        return doc
    }
}
