namespace Osprey.Serving;

/// <summary>Kinds of <see cref="ServeEvent"/>.</summary>
public enum ServeEventKind
{
    /// <summary>The first model is loaded and warmed up.</summary>
    Loaded,

    /// <summary>A new model replaced the serving one.</summary>
    Swapped,

    /// <summary>A load was refused; the serving model keeps serving.</summary>
    LoadRefused,

    /// <summary>The server listens (the message holds the URL).</summary>
    Listening,

    /// <summary>The server stops: no new requests, queued ones finish.</summary>
    Stopping,

    /// <summary>The server has stopped and released its models.</summary>
    Stopped,

    /// <summary>A stream was added and its first frame read.</summary>
    StreamAdded,

    /// <summary>A stream could not be added (the message names the source and the problem); the server serves on.</summary>
    StreamRefused,

    /// <summary>A stream's source ended (a file's end, a live stream not reopened in time).</summary>
    StreamEnded,

    /// <summary>A stream's source failed (not a stream Osprey can read).</summary>
    StreamFailed,

    /// <summary>A stream was removed.</summary>
    StreamRemoved,
}

/// <summary>Something a server did, for the CLI (or a test) to render; the library never prints.</summary>
/// <param name="Kind">What happened.</param>
/// <param name="Message">One line saying it, naming the file and the problem for a refused load.</param>
/// <param name="Model">The model now serving, where there is one.</param>
public sealed record ServeEvent(ServeEventKind Kind, string Message, ModelInfo? Model = null);

/// <summary>Why a model could not be loaded; <see cref="Failure"/> picks the HTTP status.</summary>
public enum ModelLoadFailure
{
    /// <summary>The request itself is wrong (no path, an unsupported file type): 400.</summary>
    BadRequest,

    /// <summary>No such file: 404.</summary>
    NotFound,

    /// <summary>The file is not a model Osprey can load (corrupt, truncated, another task) or failed its warm-up: 422.</summary>
    Invalid,

    /// <summary>A valid model that cannot replace the serving one (another class count): 422.</summary>
    Incompatible,
}

/// <summary>A refused model load; the message names the file and the problem.</summary>
public sealed class ModelLoadException(ModelLoadFailure failure, string message, Exception? inner = null) : Exception(message, inner)
{
    /// <summary>Why it was refused.</summary>
    public ModelLoadFailure Failure { get; } = failure;

    /// <summary>The HTTP status that answers it (400, 404 or 422).</summary>
    public int StatusCode => Failure switch
    {
        ModelLoadFailure.BadRequest => 400,
        ModelLoadFailure.NotFound => 404,
        _ => 422,
    };
}
