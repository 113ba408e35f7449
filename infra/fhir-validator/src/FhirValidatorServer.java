import ca.uhn.fhir.context.FhirContext;
import ca.uhn.fhir.context.support.DefaultProfileValidationSupport;
import ca.uhn.fhir.validation.FhirValidator;
import ca.uhn.fhir.validation.ValidationResult;
import com.sun.net.httpserver.HttpExchange;
import com.sun.net.httpserver.HttpServer;
import java.io.IOException;
import java.io.OutputStream;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.nio.charset.StandardCharsets;
import java.util.concurrent.Executors;
import org.hl7.fhir.common.hapi.validation.support.CommonCodeSystemsTerminologyService;
import org.hl7.fhir.common.hapi.validation.support.InMemoryTerminologyServerValidationSupport;
import org.hl7.fhir.common.hapi.validation.support.SnapshotGeneratingValidationSupport;
import org.hl7.fhir.common.hapi.validation.support.ValidationSupportChain;
import org.hl7.fhir.common.hapi.validation.validator.FhirInstanceValidator;

/**
 * One long-lived HAPI FHIR instance validator for base R4, answering on a loopback port.
 *
 * <pre>
 *   java -cp 'classes:lib/*' FhirValidatorServer PORT
 *   POST /validate   body: a FHIR R4 resource as JSON  →  200, the OperationOutcome as JSON
 *   GET  /health     →  200 "ok" once the validator has warmed up
 * </pre>
 *
 * The validation support is the base specification only (profiles, value sets and code systems
 * of R4, validated in memory): no terminology server, no implementation guides. The port is
 * bound after a first validation has loaded the structure definitions, so a process that
 * accepts connections answers at full speed. It exits when its standard input closes, so a
 * test run that dies never leaves it behind.
 */
public final class FhirValidatorServer {
  private static final String WARM_UP =
      "{\"resourceType\":\"Patient\",\"id\":\"warm-up\",\"gender\":\"unknown\"}";

  private FhirValidatorServer() {}

  public static void main(String[] args) throws IOException {
    if (args.length != 1) {
      System.err.println("usage: FhirValidatorServer PORT");
      System.exit(2);
    }
    int port = Integer.parseInt(args[0]);
    exitWhenStdinCloses();
    long started = System.nanoTime();
    FhirContext context = FhirContext.forR4();
    FhirValidator validator = newValidator(context);
    validator.validateWithResult(WARM_UP);

    HttpServer server =
        HttpServer.create(new InetSocketAddress(InetAddress.getLoopbackAddress(), port), 16);
    server.createContext("/health", exchange -> answer(exchange, 200, "text/plain", "ok"));
    server.createContext("/validate", exchange -> validate(exchange, context, validator));
    // Two workers: the machine's cores; a third request waits in the backlog.
    server.setExecutor(Executors.newFixedThreadPool(2));
    server.start();
    System.err.printf(
        "FHIR validator ready on 127.0.0.1:%d in %.1f s%n",
        port, (System.nanoTime() - started) / 1e9);
  }

  /** The process that started us holds our stdin: when it goes, even killed, so do we. */
  private static void exitWhenStdinCloses() {
    Thread watchdog =
        new Thread(
            () -> {
              try {
                while (System.in.read() != -1) {
                  // nothing is sent; reading only waits for end of file
                }
              } catch (IOException exc) {
                // a broken pipe is an ending too
              }
              System.exit(0);
            },
            "stdin-watchdog");
    watchdog.setDaemon(true);
    watchdog.start();
  }

  static FhirValidator newValidator(FhirContext context) {
    ValidationSupportChain chain =
        new ValidationSupportChain(
            new DefaultProfileValidationSupport(context),
            new CommonCodeSystemsTerminologyService(context),
            new InMemoryTerminologyServerValidationSupport(context),
            new SnapshotGeneratingValidationSupport(context));
    FhirInstanceValidator instanceValidator = new FhirInstanceValidator(chain);
    instanceValidator.setErrorForUnknownProfiles(true);
    return context.newValidator().registerValidatorModule(instanceValidator);
  }

  private static void validate(HttpExchange exchange, FhirContext context, FhirValidator validator)
      throws IOException {
    try {
      if (!"POST".equals(exchange.getRequestMethod())) {
        answer(exchange, 405, "text/plain", "POST a FHIR resource as JSON");
        return;
      }
      String body = new String(exchange.getRequestBody().readAllBytes(), StandardCharsets.UTF_8);
      ValidationResult result = validator.validateWithResult(body);
      String outcome = context.newJsonParser().encodeResourceToString(result.toOperationOutcome());
      answer(exchange, 200, "application/fhir+json", outcome);
    } catch (RuntimeException exc) {
      // Not even parseable as a resource: the caller's bug, reported as text.
      answer(exchange, 400, "text/plain", exc.toString());
    }
  }

  private static void answer(HttpExchange exchange, int status, String type, String body)
      throws IOException {
    byte[] bytes = body.getBytes(StandardCharsets.UTF_8);
    exchange.getResponseHeaders().set("Content-Type", type + "; charset=utf-8");
    exchange.sendResponseHeaders(status, bytes.length);
    try (OutputStream out = exchange.getResponseBody()) {
      out.write(bytes);
    }
  }
}
