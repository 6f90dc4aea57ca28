using System.Globalization;
using Microsoft.AspNetCore.Http;
using OpenCvSharp;

namespace Osprey.Serving;

/// <summary>A request's image, or why there is none (an HTTP status and a message naming the problem).</summary>
/// <param name="Image">The decoded BGR image (the caller disposes it); null on error.</param>
/// <param name="Status">200, or the 4xx that answers the request.</param>
/// <param name="Error">What is wrong with the body; null when there is an image.</param>
public sealed record ImageRead(Mat? Image, int Status, string? Error)
{
    internal static ImageRead Refuse(int status, string error) => new(null, status, error);
}

/// <summary>
/// Turns a <c>POST /v1/detect</c> body into a BGR image: a raw body (<c>image/*</c>, <c>application/octet-stream</c>, or no
/// Content-Type) or the first file of a <c>multipart/form-data</c> body, decoded by OpenCV's <c>imdecode</c> as
/// <c>cv2.imread</c> reads files (3-channel BGR, EXIF orientation applied). Refuses, with a message: another content type
/// (415), an empty body (400), a body over the size limit (413), a header or decoded image over the side or pixel limits
/// (413, naming the size) and bytes OpenCV cannot decode (400).
/// </summary>
public static class ImageInput
{
    const string Accepted = "send a JPEG or PNG image as image/jpeg, image/png or application/octet-stream, or as a file in multipart/form-data";

    /// <summary>Reads and decodes the request's image under <paramref name="options"/>' limits.</summary>
    public static async Task<ImageRead> ReadAsync(HttpRequest request, ServeOptions options, CancellationToken cancellation)
    {
        if (request.ContentLength > options.MaxBodyBytes) return TooLarge(request.ContentLength.Value, options);
        byte[] body;
        try
        {
            var (bytes, refusal) = await BodyAsync(request, cancellation).ConfigureAwait(false);
            if (refusal is not null) return refusal;
            body = bytes!;
        }
        catch (BadHttpRequestException e) when (e.StatusCode == StatusCodes.Status413PayloadTooLarge)
        {
            return TooLarge(null, options);
        }
        if (body.Length == 0) return ImageRead.Refuse(400, $"empty body: {Accepted}.");
        if (ImageHeader.TryReadSize(body) is var (width, height) && OverLimits(width, height, options) is { } headerProblem)
            return ImageRead.Refuse(413, headerProblem);
        return Decode(body, options);
    }

    static async Task<(byte[]? Bytes, ImageRead? Refusal)> BodyAsync(HttpRequest request, CancellationToken cancellation)
    {
        string? type = request.ContentType;
        if (request.HasFormContentType)
        {
            if (!type!.StartsWith("multipart/form-data", StringComparison.OrdinalIgnoreCase))
                return (null, ImageRead.Refuse(415, $"Content-Type {type} is not an image: {Accepted}."));
            var form = await request.ReadFormAsync(cancellation).ConfigureAwait(false);
            var file = form.Files.Count > 0 ? form.Files[0] : null;
            if (file is null) return (null, ImageRead.Refuse(400, $"the multipart body has no file: {Accepted}."));
            using var memory = new MemoryStream((int)Math.Min(file.Length, int.MaxValue));
            await file.CopyToAsync(memory, cancellation).ConfigureAwait(false);
            return (memory.ToArray(), null);
        }
        if (type is not null && !IsRawImageType(type))
            return (null, ImageRead.Refuse(415, $"Content-Type {type} is not an image: {Accepted}."));
        using var buffer = new MemoryStream(request.ContentLength is { } length and > 0 ? (int)length : 64 << 10);
        await request.Body.CopyToAsync(buffer, cancellation).ConfigureAwait(false);
        return (buffer.ToArray(), null);
    }

    static bool IsRawImageType(string type)
    {
        string media = type.Split(';')[0].Trim();
        return media.StartsWith("image/", StringComparison.OrdinalIgnoreCase) ||
               media.Equals("application/octet-stream", StringComparison.OrdinalIgnoreCase);
    }

    static ImageRead Decode(byte[] body, ServeOptions options)
    {
        Mat image;
        try
        {
            image = Cv2.ImDecode(body, ImreadModes.Color);
        }
        catch (OpenCVException)
        {
            image = new Mat();
        }
        if (image.Empty())
        {
            image.Dispose();
            string start = Convert.ToHexString(body, 0, Math.Min(8, body.Length));
            return ImageRead.Refuse(400, $"the body ({body.Length} bytes, starting 0x{start}) is not an image OpenCV can decode: {Accepted}.");
        }
        if (OverLimits(image.Width, image.Height, options) is { } problem)
        {
            image.Dispose();
            return ImageRead.Refuse(413, problem);
        }
        return new ImageRead(image, 200, null);
    }

    static string? OverLimits(int width, int height, ServeOptions options)
    {
        if (width > options.MaxImageSide || height > options.MaxImageSide)
            return $"the image is {width}×{height} pixels: over the limit of {options.MaxImageSide} pixels a side.";
        if ((long)width * height > options.MaxImagePixels)
            return string.Create(CultureInfo.InvariantCulture,
                $"the image is {width}×{height} pixels ({(long)width * height / 1e6:0.#} MP): over the limit of {options.MaxImagePixels / 1e6:0.#} megapixels.");
        return null;
    }

    static ImageRead TooLarge(long? length, ServeOptions options)
    {
        string size = length is { } n ? $"the body is {n} bytes: " : "the body is ";
        string limit = options.MaxBodyBytes % (1 << 20) == 0 ? $"{options.MaxBodyBytes >> 20} MiB" : $"{options.MaxBodyBytes} bytes";
        return ImageRead.Refuse(413, $"{size}over the limit of {limit}.");
    }
}
